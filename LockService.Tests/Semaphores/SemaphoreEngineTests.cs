using System.Diagnostics;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Semaphores;

/// <summary>The semaphore engine alone: admission by each caller's limit, slots, fencing per slot, expiry by Redis time, waiting.</summary>
public sealed class SemaphoreEngineTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private TestSemaphores Engine => fixture.Semaphores;

    private IDatabase Db => fixture.Redis.Redis.GetDatabase();

    private static LeaseName Name(string test) => LeaseName.Of(Keys.Unique(test));

    private async Task<List<PermitLease>> HoldAsync(LeaseName name, int limit, int count, long ttlMs = 30_000)
    {
        var permits = new List<PermitLease>();
        for (var i = 0; i < count; i++)
        {
            var result = await Engine.AcquireAsync(name, limit, new AcquireRequest(ttlMs));
            Assert.True(result.Acquired, $"permit {i} of {count} with limit {limit}");
            permits.Add(result.Lease!);
        }

        return permits;
    }

    [Fact]
    public async Task Up_to_limit_callers_get_permits_in_the_lowest_free_slots_and_the_next_finds_it_full_until_the_earliest_expiry()
    {
        var name = Name(nameof(Up_to_limit_callers_get_permits_in_the_lowest_free_slots_and_the_next_finds_it_full_until_the_earliest_expiry));
        var permits = new List<PermitLease>();
        for (var i = 0; i < 3; i++)
        {
            permits.Add((await Engine.AcquireAsync(name, 3, new AcquireRequest(20_000 + (i * 5_000), Owner: $"worker-{i}"))).Lease!);
        }

        var full = await Engine.AcquireAsync(name, 3, new AcquireRequest(10_000));

        Assert.Equal([0, 1, 2], permits.Select(p => p.Slot));
        Assert.All(permits, p => Assert.Matches("^[0-9a-f]{32}$", p.Token));
        Assert.Equal(3, permits.Select(p => p.Token).Distinct().Count());
        Assert.All(permits, p => Fences.AssertTimeBased(p.FencingToken));
        Assert.All(permits, p => Assert.Equal(3, p.Limit));
        Assert.Equal(AcquireStatus.Held, full.Status);
        Assert.Equal(3, full.Busy.Held);
        Assert.InRange(full.RetryAfterMs, 10_000, 20_000);   // the earliest permit's expiry, not the latest's
    }

    [Fact]
    public async Task A_freed_slot_is_the_next_one_given_and_its_fencing_token_is_higher_than_before()
    {
        var name = Name(nameof(A_freed_slot_is_the_next_one_given_and_its_fencing_token_is_higher_than_before));
        var permits = await HoldAsync(name, 4, 4);

        Assert.True((await Engine.ReleaseAsync(name, permits[1].Token)).Released);
        Assert.True((await Engine.ReleaseAsync(name, permits[2].Token)).Released);
        var next = (await Engine.AcquireAsync(name, 4, new AcquireRequest(30_000))).Lease!;
        var after = (await Engine.AcquireAsync(name, 4, new AcquireRequest(30_000))).Lease!;

        Assert.Equal(1, next.Slot);
        Assert.Equal(2, after.Slot);
        Assert.True(next.FencingToken > permits[1].FencingToken, "fencing tokens increase per slot");
        Assert.True(after.FencingToken > permits[2].FencingToken, "fencing tokens increase per slot");
    }

    [Fact]
    public async Task Callers_with_different_limits_are_each_admitted_while_fewer_than_their_own_limit_are_held()
    {
        var name = Name(nameof(Callers_with_different_limits_are_each_admitted_while_fewer_than_their_own_limit_are_held));
        await HoldAsync(name, 5, 3);

        var two = await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000));
        var three = await Engine.AcquireAsync(name, 3, new AcquireRequest(30_000));
        var four = await Engine.AcquireAsync(name, 4, new AcquireRequest(30_000));
        var fourAgain = await Engine.AcquireAsync(name, 4, new AcquireRequest(30_000));
        var ten = await Engine.AcquireAsync(name, 10, new AcquireRequest(30_000));

        Assert.Equal(AcquireStatus.Held, two.Status);
        Assert.Equal(AcquireStatus.Held, three.Status);
        Assert.Equal(3, four.Lease!.Slot);
        Assert.Equal(4, four.Lease.Limit);
        Assert.Equal(AcquireStatus.Held, fourAgain.Status);
        Assert.Equal(4, fourAgain.Busy.Held);
        Assert.Equal(4, ten.Lease!.Slot);
        Assert.Equal(5, (await Engine.InspectAsync(name))!.Held);
    }

    [Fact]
    public async Task A_caller_with_a_small_limit_gets_a_slot_below_it_even_when_higher_slots_are_held()
    {
        var name = Name(nameof(A_caller_with_a_small_limit_gets_a_slot_below_it_even_when_higher_slots_are_held));
        var permits = await HoldAsync(name, 10, 6);

        foreach (var permit in permits.Take(5))
        {
            await Engine.ReleaseAsync(name, permit.Token);
        }

        // Slot 5 is held; a caller with limit 2 is admitted (1 held < 2) and its slot is below its limit.
        var small = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;

        Assert.Equal(0, small.Slot);
        Assert.Equal(AcquireStatus.Held, (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Status);
    }

    [Fact]
    public async Task Fencing_tokens_strictly_increase_per_slot_across_release_and_expiry_and_follow_redis_time()
    {
        var name = Name(nameof(Fencing_tokens_strictly_increase_per_slot_across_release_and_expiry_and_follow_redis_time));
        var fences = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var released = (await Engine.AcquireAsync(name, 2, new AcquireRequest(5_000))).Lease!;
            Assert.Equal(0, released.Slot);
            fences.Add(released.FencingToken);
            await Engine.ReleaseAsync(name, released.Token);

            var expiring = (await Engine.AcquireAsync(name, 2, new AcquireRequest(20))).Lease!;
            Assert.Equal(0, expiring.Slot);
            fences.Add(expiring.FencingToken);
            await RedisServer.WaitUntilAsync(async () => await Engine.InspectAsync(name) is null, TimeSpan.FromSeconds(5), "the permit to expire");
        }

        Fences.AssertStrictlyIncreasing(fences);
        Assert.All(fences, Fences.AssertTimeBased);
    }

    [Fact]
    public async Task Fencing_tokens_of_a_slot_count_up_from_its_last_one_when_that_is_ahead_of_redis_time()
    {
        var name = Name(nameof(Fencing_tokens_of_a_slot_count_up_from_its_last_one_when_that_is_ahead_of_redis_time));
        var keys = SemaphoreKeys.For("sem:", name);
        const long last = (1L << 51) + 123_457;
        await Db.HashSetAsync(keys.Fence, "1", last);

        var zero = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;
        var one = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;

        Assert.Equal(1, one.Slot);
        Assert.Equal(last + 1, one.FencingToken);
        Fences.AssertTimeBased(zero.FencingToken);   // slot 0 has its own counter, on Redis's clock
        Assert.Equal(last + 1, (long)await Db.HashGetAsync(keys.Fence, "1"));
    }

    [Fact]
    public async Task An_expired_permit_cannot_be_released_or_extended_and_is_not_counted()
    {
        var name = Name(nameof(An_expired_permit_cannot_be_released_or_extended_and_is_not_counted));
        var stale = (await Engine.AcquireAsync(name, 1, new AcquireRequest(50))).Lease!;
        await RedisServer.WaitUntilAsync(async () => (await Engine.CheckAsync(name, stale.Token)).Info is null, TimeSpan.FromSeconds(5), "the permit to expire");

        var fresh = await Engine.AcquireAsync(name, 1, new AcquireRequest(30_000));
        var release = await Engine.ReleaseAsync(name, stale.Token);
        var extend = await Engine.ExtendAsync(name, stale.Token, new ExtendRequest(60_000));

        Assert.True(fresh.Acquired);
        Assert.Equal(0, fresh.Lease!.Slot);
        Assert.False(release.Released);
        Assert.Equal(LeaseEnd.Expired, release.Ended);
        Assert.Null(extend.Lease);
        Assert.Equal(LeaseEnd.Expired, extend.Ended);
        Assert.Equal(1, (await Engine.InspectAsync(name))!.Held);
        Assert.NotNull((await Engine.CheckAsync(name, fresh.Lease.Token)).Info);
    }

    [Fact]
    public async Task An_expired_permit_is_dropped_by_redis_time_even_if_its_keys_outlive_it()
    {
        var name = Name(nameof(An_expired_permit_is_dropped_by_redis_time_even_if_its_keys_outlive_it));
        var longer = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;
        var shorter = (await Engine.AcquireAsync(name, 2, new AcquireRequest(50))).Lease!;
        await Task.Delay(100);   // the keys live on (the other permit); only the scripts' own judgement of time drops it

        var info = await Engine.InspectAsync(name);

        Assert.Equal(1, info!.Held);
        Assert.Equal(longer.Slot, Assert.Single(info.Permits).Slot);
        Assert.Equal(LeaseEnd.Expired, (await Engine.CheckAsync(name, shorter.Token)).Ended);
        Assert.Equal(LeaseEnd.Expired, (await Engine.ReleaseAsync(name, shorter.Token)).Ended);
    }

    [Fact]
    public async Task A_released_or_forced_or_unknown_token_says_why()
    {
        var name = Name(nameof(A_released_or_forced_or_unknown_token_says_why));
        var released = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;
        var forced = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000, Owner: "nightly"))).Lease!;
        await Engine.ReleaseAsync(name, released.Token);

        var force = await Engine.ForceReleaseAsync(name, forced.Slot);
        var again = await Engine.ForceReleaseAsync(name, forced.Slot);

        Assert.True(force.Released);
        Assert.Equal(forced.FencingToken, force.FencingToken);
        Assert.Equal("nightly", force.Owner);
        Assert.Equal(2, force.Limit);
        Assert.False(again.Released);
        Assert.Equal(LeaseEnd.Released, (await Engine.CheckAsync(name, released.Token)).Ended);
        Assert.Equal(LeaseEnd.Forced, (await Engine.CheckAsync(name, forced.Token)).Ended);
        Assert.Equal(LeaseEnd.Forced, (await Engine.ExtendAsync(name, forced.Token, default)).Ended);
        Assert.Equal(LeaseEnd.Unknown, (await Engine.ReleaseAsync(name, LeaseToken.New())).Ended);
        Assert.Null(await Engine.InspectAsync(name));
    }

    [Fact]
    public async Task Extend_sets_the_ttl_keeps_the_slot_and_fence_and_is_cut_to_the_hold_cap()
    {
        var name = Name(nameof(Extend_sets_the_ttl_keeps_the_slot_and_fence_and_is_cut_to_the_hold_cap));
        var capped = (await Engine.AcquireAsync(name, 2, new AcquireRequest(10_000, MaxHoldMs: 20_000))).Lease!;
        var plain = (await Engine.AcquireAsync(name, 2, new AcquireRequest(10_000))).Lease!;

        var longer = (await Engine.ExtendAsync(name, plain.Token, new ExtendRequest(60_000))).Lease!;
        var back = (await Engine.ExtendAsync(name, plain.Token, new ExtendRequest())).Lease!;
        var cut = (await Engine.ExtendAsync(name, capped.Token, new ExtendRequest(60_000))).Lease!;

        Assert.Equal(60_000, longer.TtlMs);
        Assert.Equal(10_000, back.TtlMs);
        Assert.Equal((plain.Slot, plain.FencingToken), (back.Slot, back.FencingToken));
        Assert.InRange(cut.TtlMs, 15_000, 20_000);
        Assert.Equal(20_000, cut.MaxHoldMs);
        Assert.Equal(capped.AcquiredAt, cut.AcquiredAt);
    }

    [Fact]
    public async Task An_idempotent_retry_while_held_returns_the_same_permit_and_after_release_a_new_one()
    {
        var name = Name(nameof(An_idempotent_retry_while_held_returns_the_same_permit_and_after_release_a_new_one));
        var request = new AcquireRequest(30_000, Owner: "retrier", IdempotencyKey: "retry-" + Guid.NewGuid().ToString("N"));
        var original = (await Engine.AcquireAsync(name, 3, request)).Lease!;

        var replay = await Engine.AcquireAsync(name, 3, request with { TtlMs = 5_000 });
        var extended = (await Engine.ExtendAsync(name, original.Token, new ExtendRequest(60_000))).Lease!;
        var replayAfterExtend = (await Engine.AcquireAsync(name, 3, request)).Lease!;
        await Engine.ReleaseAsync(name, original.Token);
        var fresh = (await Engine.AcquireAsync(name, 3, request)).Lease!;

        // The same permit, as it stands now: what remains of its TTL, its expiry (the extend's, after it).
        Assert.True(replay.Replayed);
        Assert.Equal(original with { TtlMs = replay.Lease!.TtlMs, ExpiresAt = replay.Lease.ExpiresAt }, replay.Lease);
        Assert.InRange(replay.Lease.TtlMs, 1, original.TtlMs);
        Assert.Equal(original with { TtlMs = replayAfterExtend.TtlMs, ExpiresAt = extended.ExpiresAt }, replayAfterExtend);
        Assert.InRange(replayAfterExtend.TtlMs, 30_000, 60_000);
        Assert.Equal(1, (await Engine.InspectAsync(name))!.Held);
        Assert.NotEqual(original.Token, fresh.Token);
    }

    [Fact]
    public async Task A_replay_whose_caller_is_gone_leaves_the_permit_to_the_request_that_obtained_it()
    {
        // As for a lock: the twin of a hedged request replays with its client gone at the moment it would answer.
        var name = Name(nameof(A_replay_whose_caller_is_gone_leaves_the_permit_to_the_request_that_obtained_it));
        var request = new AcquireRequest(30_000, WaitMs: 5_000, IdempotencyKey: "hedge-" + Guid.NewGuid().ToString("N"));
        var original = await Engine.AcquireAsync(name, 2, request);
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Engine.AcquireAsync(name, 2, request, gone.Token));

        Assert.True(original.Acquired);
        Assert.NotNull((await Engine.CheckAsync(name, original.Lease!.Token)).Info);

        // A request that obtained a permit itself as its caller went away still releases it.
        var other = Name(nameof(A_replay_whose_caller_is_gone_leaves_the_permit_to_the_request_that_obtained_it));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Engine.AcquireAsync(other, 2, request, gone.Token));
        Assert.Null(await Engine.InspectAsync(other));
    }

    [Fact]
    public async Task Inspection_describes_at_most_1000_permits_by_slot_and_says_it_was_truncated()
    {
        var name = Name(nameof(Inspection_describes_at_most_1000_permits_by_slot_and_says_it_was_truncated));
        for (var i = 0; i < 1003; i++)
        {
            Assert.True((await Engine.AcquireAsync(name, 2000, new AcquireRequest(60_000, Owner: "bulk"))).Acquired);
        }

        var info = (await Engine.InspectAsync(name))!;
        var small = Name("small");
        await Engine.AcquireAsync(small, 5, new AcquireRequest(60_000));
        var one = (await Engine.InspectAsync(small))!;

        Assert.Equal(1003, info.Held);
        Assert.Equal(SemaphoreStore.MaxInspected, info.Permits.Count);
        Assert.True(info.Truncated);
        Assert.Equal(info.Permits.OrderBy(p => p.Slot).Select(p => p.Slot), info.Permits.Select(p => p.Slot));
        Assert.All(info.Permits, p => Assert.Equal("bulk", p.Owner));
        Assert.False(one.Truncated);
        Assert.Equal(1, one.Held);
    }

    [Fact]
    public async Task Every_key_of_a_semaphore_shares_its_hash_tag_and_has_a_ttl()
    {
        var key = Keys.Unique(nameof(Every_key_of_a_semaphore_shares_its_hash_tag_and_has_a_ttl));
        var name = new LeaseName("billing", key);
        var keys = SemaphoreKeys.For("sem:", name);
        var permit = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000, Owner: "o", IdempotencyKey: "idem-1", MaxHoldMs: 40_000))).Lease!;
        await Engine.AcquireAsync(name, 2, new AcquireRequest(10_000));
        await Engine.ReleaseAsync(name, permit.Token);

        Assert.Equal($"sem:billing:{{{key}}}", keys.Semaphore);
        foreach (var redisKey in new[] { keys.Semaphore, keys.Permits, keys.Slots, keys.Fence, keys.Leases })
        {
            Assert.Contains("{" + key + "}", redisKey, StringComparison.Ordinal);
            Assert.True(await Db.KeyExistsAsync(redisKey), redisKey);
            Assert.True(await Db.KeyTimeToLiveAsync(redisKey) > TimeSpan.Zero, $"{redisKey} has no TTL");
        }

        // The permits left: the one held, its record and slot; the released one's owner and idempotency key are gone.
        Assert.Equal(1, await Db.SortedSetLengthAsync(keys.Semaphore));
        Assert.Equal(1, await Db.HashLengthAsync(keys.Permits));
        Assert.Equal(1, await Db.HashLengthAsync(keys.Slots));
        Assert.False(await Db.KeyExistsAsync(LockKeys.For("lock:", name).Lock));
    }

    [Fact]
    public async Task Waiters_woken_by_expiry_get_as_many_places_as_expired_in_arrival_order()
    {
        var name = Name(nameof(Waiters_woken_by_expiry_get_as_many_places_as_expired_in_arrival_order));
        using var engine = fixture.NewSemaphoreEngine(new LeaseOptions { RecheckMs = 60_000 });
        var held = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++)
        {
            await engine.AcquireAsync(name, 3, new AcquireRequest(2_000));
        }

        var order = new List<int>();
        var waiters = new List<Task<AcquireResult<PermitLease, SemaphoreBusy>>>();
        for (var i = 0; i < 4; i++)
        {
            var index = i;
            waiters.Add(Task.Run(async () =>
            {
                var result = await engine.AcquireAsync(name, 3, new AcquireRequest(30_000, WaitMs: 20_000));
                lock (order)
                {
                    order.Add(index);
                }

                return result;
            }));
            await RedisServer.WaitUntilAsync(() => Task.FromResult(engine.WaitingCount == index + 1), TimeSpan.FromSeconds(10), $"waiter {index} to queue");
        }

        var firstThree = await Task.WhenAll(waiters.Take(3)).WaitAsync(TimeSpan.FromSeconds(15));

        // The three expiries (2 s after they were taken) let in the first three, within 5 s more while the re-check is a
        // minute away; the fourth keeps waiting for a place.
        Assert.All(firstThree, r => Assert.True(r.Acquired));
        Assert.InRange(held.ElapsedMilliseconds, 1_900, 7_000);
        Assert.Equal([0, 1, 2], order.Order());
        Assert.Equal([0, 1, 2], firstThree.Select(r => r.Lease!.Slot).Order());
        Assert.False(waiters[3].IsCompleted);
        await engine.ReleaseAsync(name, firstThree[1].Lease!.Token);
        var fourth = await waiters[3].WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(firstThree[1].Lease!.Slot, fourth.Lease!.Slot);
    }

    [Fact]
    public async Task A_notice_of_freed_places_wakes_only_waiters_at_the_front_so_a_late_one_lets_none_jump_the_line()
    {
        // A notice can arrive after the waiters it freed places for took them and left (the expiry test above saw the fourth
        // of four waiters woken by one and take the third's place): of waiters alike, only the first is woken; one with a
        // higher limit than all ahead of it is at the front too.
        var keys = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, Name(nameof(A_notice_of_freed_places_wakes_only_waiters_at_the_front_so_a_late_one_lets_none_jump_the_line)));
        var channel = RedisChannel.Literal(keys.Channel);
        using var queues = new WaitQueues(fixture.Redis.Redis, new WaitBounds(new LeaseOptions { MaxWaiters = 10, MaxWatchers = 10 }), TimeProvider.System);
        var first = queues.TryJoin(LeaseKind.Semaphore, SemaphoreWake.Instance, keys.Semaphore, channel, tenant: string.Empty, idempotent: false, claim: 3, out _)!;
        var second = queues.TryJoin(LeaseKind.Semaphore, SemaphoreWake.Instance, keys.Semaphore, channel, tenant: string.Empty, idempotent: false, claim: 3, out _)!;
        var higher = queues.TryJoin(LeaseKind.Semaphore, SemaphoreWake.Instance, keys.Semaphore, channel, tenant: string.Empty, idempotent: false, claim: 5, out _)!;
        try
        {
            await first.Queue.Subscription.WaitAsync(TimeSpan.FromSeconds(10));
            await Db.PublishAsync(channel, $"{SemaphoreMessages.Freed} 3 2");
            await RedisServer.WaitUntilAsync(() => Task.FromResult(first.Pending && higher.Pending), TimeSpan.FromSeconds(10), "the notice to wake the front");

            Assert.False(second.Pending);
        }
        finally
        {
            queues.Leave(first, acquired: false);
            queues.Leave(second, acquired: false);
            queues.Leave(higher, acquired: false);
        }
    }

    [Fact]
    public async Task A_release_on_one_engine_wakes_a_waiter_on_another()
    {
        var name = Name(nameof(A_release_on_one_engine_wakes_a_waiter_on_another));
        using var other = fixture.NewSemaphoreEngine(new LeaseOptions { RecheckMs = 60_000 });
        var holder = (await Engine.AcquireAsync(name, 1, new AcquireRequest(30_000))).Lease!;
        var waiter = other.AcquireAsync(name, 1, new AcquireRequest(30_000, WaitMs: 20_000));
        await RedisServer.WaitUntilAsync(() => Task.FromResult(other.WaitingCount == 1), TimeSpan.FromSeconds(10), "the waiter to queue");

        await Engine.ReleaseAsync(name, holder.Token);
        var released = Stopwatch.StartNew();
        var result = await waiter.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(result.Acquired);
        Assert.True(result.Waited);
        Assert.True(released.Elapsed < TimeSpan.FromSeconds(5), $"{released.ElapsedMilliseconds} ms: the re-check is a minute away, the TTL 30 s");
        Assert.True(result.Lease!.FencingToken > holder.FencingToken);
    }

    [Fact]
    public async Task By_redis_time_no_slot_is_ever_held_twice_and_never_more_than_limit_under_32_loops_on_two_engines()
    {
        // Exact intervals in Redis's clock: [acquiredAt, acquiredAt + held ms] for a release, [acquiredAt, expiresAt] for a
        // holder that vanishes (one in six, with TTLs of 50-350 ms).
        var name = Name(nameof(By_redis_time_no_slot_is_ever_held_twice_and_never_more_than_limit_under_32_loops_on_two_engines));
        using var other = fixture.NewSemaphoreEngine();
        var engines = new[] { Engine, other };
        var holds = new List<Hold>();
        var lost = new List<string>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 32).Select(loop => Task.Run(async () =>
        {
            var random = new Random(loop);
            while (clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                var vanish = random.Next(6) == 0;
                try
                {
                    var result = await engines[loop % 2].AcquireAsync(name, 4, new AcquireRequest(vanish ? 50 + random.Next(300) : 10_000, WaitMs: 5_000));
                    if (result.Lease is not { } permit)
                    {
                        continue;
                    }

                    var released = vanish ? default : await engines[loop % 2].ReleaseAsync(name, permit.Token);
                    lock (holds)
                    {
                        holds.Add(new Hold(permit.Slot, permit.FencingToken, permit.AcquiredAt, vanish ? permit.ExpiresAt : permit.AcquiredAt.AddMilliseconds(released.HeldMs)));
                        if (!vanish && !released.Released)
                        {
                            lost.Add($"slot {permit.Slot}: {released.Ended}");
                        }
                    }
                }
                catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
                {
                    // A loaded machine's Redis timeout: an outage, which the engine answers as such; not what this test is about.
                }
            }
        })));

        Assert.True(holds.Count > 200, $"only {holds.Count} holds");
        Assert.Empty(lost);   // a permit released by its holder was still held: none expired or was taken early
        HoldChecks.AssertNeverMoreThan(4, holds);
        HoldChecks.AssertOneHolderPerSlotWithIncreasingFences(holds);
    }

    [Fact]
    public async Task A_watch_answers_at_once_when_the_permit_ends_and_with_the_permit_when_the_wait_runs_out()
    {
        var name = Name(nameof(A_watch_answers_at_once_when_the_permit_ends_and_with_the_permit_when_the_wait_runs_out));
        var watched = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;
        var other = (await Engine.AcquireAsync(name, 2, new AcquireRequest(30_000))).Lease!;

        var stillHeld = await Engine.WatchAsync(name, watched.Token, 200);
        var watch = Engine.WatchAsync(name, watched.Token, 20_000);
        await Engine.ReleaseAsync(name, other.Token);    // another permit's release: the watch looks and keeps watching
        await Task.Delay(100);
        Assert.False(watch.IsCompleted);
        await Engine.ForceReleaseAsync(name, watched.Slot);
        var ended = await watch.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(watched.Slot, stillHeld.Info!.Slot);
        Assert.Equal(LeaseEnd.Forced, ended.Ended);
    }

    [Fact]
    public async Task A_watch_answers_expired_at_about_its_own_permits_ttl()
    {
        var name = Name(nameof(A_watch_answers_expired_at_about_its_own_permits_ttl));
        using var engine = fixture.NewSemaphoreEngine(new LeaseOptions { RecheckMs = 60_000 });
        await engine.AcquireAsync(name, 2, new AcquireRequest(30_000));
        var watched = (await engine.AcquireAsync(name, 2, new AcquireRequest(400))).Lease!;
        var started = Stopwatch.StartNew();

        var ended = await engine.WatchAsync(name, watched.Token, 20_000).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(LeaseEnd.Expired, ended.Ended);
        Assert.InRange(started.ElapsedMilliseconds, 250, 5_000);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10_001)]
    [InlineData(-1)]
    public async Task A_limit_outside_1_to_MaxLimit_is_refused_naming_limit_and_writes_nothing(int limit)
    {
        var name = Name(nameof(A_limit_outside_1_to_MaxLimit_is_refused_naming_limit_and_writes_nothing));

        var error = await Assert.ThrowsAsync<ArgumentException>(() => Engine.AcquireAsync(name, limit, new AcquireRequest(5_000)));

        Assert.Equal("limit", error.ParamName);
        Assert.False(await Db.KeyExistsAsync(SemaphoreKeys.For("sem:", name).Semaphore));
    }

    [Theory]
    [InlineData("freed 3 7", true, 3, 7)]
    [InlineData("freed 1 0", true, 1, 0)]
    [InlineData("freed 3", false, 0, 0)]
    [InlineData("freed x 1", false, 0, 0)]
    [InlineData("freed 2 1x", false, 0, 0)]
    [InlineData("released", false, 0, 0)]
    [InlineData("acquired", false, 0, 0)]
    public void The_freed_notice_reads_places_and_count(string message, bool valid, int places, int held)
    {
        Assert.Equal(valid, SemaphoreMessages.TryParseFreed(message, out var readPlaces, out var readHeld));
        Assert.Equal((places, held), valid ? (readPlaces, readHeld) : (0, 0));
    }
}
