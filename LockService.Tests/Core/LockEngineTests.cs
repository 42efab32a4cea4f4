using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Core;

public sealed class LockEngineTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private TestLocks Engine => fixture.Engine;

    private IDatabase Db => fixture.Redis.Redis.GetDatabase();

    [Fact]
    public async Task Acquire_gives_a_token_and_fencing_token_and_a_second_acquire_sees_it_held()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Acquire_gives_a_token_and_fencing_token_and_a_second_acquire_sees_it_held)));
        var first = await Engine.AcquireAsync(name, new AcquireRequest(5_000, Owner: "worker-1"));
        var second = await Engine.AcquireAsync(name, new AcquireRequest(5_000));

        Assert.True(first.Acquired);
        Assert.Matches("^[0-9a-f]{32}$", first.Lease!.Token);
        Fences.AssertTimeBased(first.Lease.FencingToken);
        Assert.Equal("worker-1", first.Lease.Owner);
        Assert.Equal(AcquireStatus.Held, second.Status);
        Assert.InRange(second.RetryAfterMs, 1, 5_000);
    }

    [Fact]
    public async Task Every_key_of_one_lock_shares_its_hash_tag_so_scripts_are_single_slot()
    {
        var key = Keys.Unique(nameof(Every_key_of_one_lock_shares_its_hash_tag_so_scripts_are_single_slot));
        var lease = (await Engine.AcquireAsync(LeaseName.Of(key), new AcquireRequest(5_000))).Lease!;
        var keys = LockKeys.For("lock:", LeaseName.Of(key));

        Assert.Equal($"lock:{{{key}}}", keys.Lock);
        Assert.True(await Db.KeyExistsAsync(keys.Lock));
        Assert.Equal(lease.FencingToken, await Fences.LastInRedisAsync(Db, keys.Fence));
    }

    [Fact]
    public async Task Release_with_a_foreign_token_fails_and_keeps_the_lock()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Release_with_a_foreign_token_fails_and_keeps_the_lock)));
        var held = await Engine.AcquireAsync(name, new AcquireRequest(5_000));

        Assert.False((await Engine.ReleaseAsync(name, LeaseToken.New())).Released);
        Assert.Equal(held.Lease!.FencingToken, (await Engine.InspectAsync(name))!.FencingToken);
        Assert.True((await Engine.ReleaseAsync(name, held.Lease.Token)).Released);
        Assert.Null(await Engine.InspectAsync(name));
    }

    [Fact]
    public async Task Extend_with_a_foreign_token_fails_and_leaves_the_ttl_alone()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Extend_with_a_foreign_token_fails_and_leaves_the_ttl_alone)));
        // 30 s, not less: the lock must outlive a loaded machine's pauses to be inspected; still half the refused 60 s.
        await Engine.AcquireAsync(name, new AcquireRequest(30_000));

        Assert.Null((await Engine.ExtendAsync(name, LeaseToken.New(), new ExtendRequest(60_000))).Lease);
        Assert.InRange((await Engine.InspectAsync(name))!.TtlMs, 1, 30_000);
    }

    [Fact]
    public async Task Releasing_an_expired_lock_that_someone_else_reacquired_leaves_theirs_intact()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Releasing_an_expired_lock_that_someone_else_reacquired_leaves_theirs_intact)));
        var stale = await Engine.AcquireAsync(name, new AcquireRequest(50));
        await RedisServer.WaitUntilAsync(async () => await Engine.InspectAsync(name) is null, TimeSpan.FromSeconds(5), "the lock to expire");
        var fresh = await Engine.AcquireAsync(name, new AcquireRequest(5_000));

        Assert.False((await Engine.ReleaseAsync(name, stale.Lease!.Token)).Released);
        Assert.Null((await Engine.ExtendAsync(name, stale.Lease.Token, new ExtendRequest(5_000))).Lease);
        Assert.NotNull((await Engine.CheckAsync(name, fresh.Lease!.Token)).Info);
    }

    [Fact]
    public async Task Fencing_tokens_strictly_increase_across_release_and_expiry()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Fencing_tokens_strictly_increase_across_release_and_expiry)));
        var fences = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var released = await Engine.AcquireAsync(name, new AcquireRequest(5_000));
            fences.Add(released.Lease!.FencingToken);
            await Engine.ReleaseAsync(name, released.Lease.Token);

            var expiring = await Engine.AcquireAsync(name, new AcquireRequest(20));
            fences.Add(expiring.Lease!.FencingToken);
            await RedisServer.WaitUntilAsync(async () => await Engine.InspectAsync(name) is null, TimeSpan.FromSeconds(5), "the lock to expire");
        }

        Fences.AssertStrictlyIncreasing(fences);
    }

    [Fact]
    public async Task Extend_never_resurrects_an_expired_lock()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Extend_never_resurrects_an_expired_lock)));
        var lease = (await Engine.AcquireAsync(name, new AcquireRequest(20))).Lease!;
        await RedisServer.WaitUntilAsync(async () => await Engine.InspectAsync(name) is null, TimeSpan.FromSeconds(5), "the lock to expire");

        Assert.Null((await Engine.ExtendAsync(name, lease.Token, new ExtendRequest(60_000))).Lease);
        Assert.Null(await Engine.InspectAsync(name));
        Assert.False(await Db.KeyExistsAsync(LockKeys.For("lock:", name).Lock));
    }

    [Fact]
    public async Task Extend_defaults_to_the_acquired_ttl_even_after_an_earlier_extend()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Extend_defaults_to_the_acquired_ttl_even_after_an_earlier_extend)));
        // 10 s, not less: the lock must outlive a loaded machine's pauses to be inspected; still far from the 60 s.
        var lease = (await Engine.AcquireAsync(name, new AcquireRequest(10_000))).Lease!;

        var longer = (await Engine.ExtendAsync(name, lease.Token, new ExtendRequest(60_000))).Lease;
        var back = (await Engine.ExtendAsync(name, lease.Token, new ExtendRequest())).Lease;

        Assert.Equal(60_000, longer!.TtlMs);
        Assert.Equal(10_000, back!.TtlMs);
        Assert.Equal(lease.FencingToken, back.FencingToken);
        Assert.InRange((await Engine.InspectAsync(name))!.TtlMs, 1, 10_000);
    }

    [Fact]
    public async Task Inspect_shows_holder_and_remaining_ttl_and_check_tells_token_holders_only()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Inspect_shows_holder_and_remaining_ttl_and_check_tells_token_holders_only)));
        Assert.Null(await Engine.InspectAsync(name));
        var lease = (await Engine.AcquireAsync(name, new AcquireRequest(10_000, Owner: "cron@host"))).Lease!;

        var info = await Engine.InspectAsync(name);
        Assert.Equal("cron@host", info!.Owner);
        Assert.Equal(lease.FencingToken, info.FencingToken);
        Assert.InRange(info.TtlMs, 1, 10_000);
        Assert.NotNull((await Engine.CheckAsync(name, lease.Token)).Info);
        Assert.Null((await Engine.CheckAsync(name, LeaseToken.New())).Info);
    }

    [Fact]
    public async Task Await_using_the_result_releases_the_lock_at_the_end_of_the_scope()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Await_using_the_result_releases_the_lock_at_the_end_of_the_scope)));
        await using (var held = await Engine.AcquireAsync(name, new AcquireRequest(10_000)))
        {
            Assert.True(held.Acquired);
            Assert.NotNull(await Engine.InspectAsync(name));
        }

        Assert.Null(await Engine.InspectAsync(name));
    }

    [Fact]
    public async Task Tenants_have_separate_key_spaces_and_fencing_counters()
    {
        var key = Keys.Unique(nameof(Tenants_have_separate_key_spaces_and_fencing_counters));
        var billing = await Engine.AcquireAsync(new LeaseName("billing", key), new AcquireRequest(5_000));
        var shipping = await Engine.AcquireAsync(new LeaseName("shipping", key), new AcquireRequest(5_000));

        Assert.True(billing.Acquired);
        Assert.True(shipping.Acquired);
        Assert.False((await Engine.ReleaseAsync(new LeaseName("shipping", key), billing.Lease!.Token)).Released);
        Assert.Equal("lock:billing:{" + key + "}", LockKeys.For("lock:", new LeaseName("billing", key)).Lock);
        Assert.True(await Db.KeyExistsAsync(LockKeys.For("lock:", new LeaseName("billing", key)).Lock));
        Assert.Equal(shipping.Lease!.FencingToken, await Fences.LastInRedisAsync(Db, LockKeys.For("lock:", new LeaseName("shipping", key)).Fence));
    }

    [Fact]
    public void Tokens_are_32_lowercase_hex_characters_and_never_repeat()
    {
        var tokens = Enumerable.Range(0, 10_000).Select(_ => LeaseToken.New()).ToHashSet();

        Assert.Equal(10_000, tokens.Count);
        Assert.All(tokens, t => Assert.True(LeaseToken.IsValid(t)));
        Assert.False(LeaseToken.IsValid(tokens.First().ToUpperInvariant()));
    }

    [Theory]
    [InlineData("a", true)]
    [InlineData("orders-42:eu_1.x", true)]
    [InlineData("", false)]
    [InlineData(".hidden", false)]
    [InlineData("-dash", false)]
    [InlineData("a{b}", false)]
    [InlineData("a b", false)]
    [InlineData("a/b", false)]
    [InlineData("caf\u00e9", false)]
    public void Lock_names_follow_the_contract(string key, bool valid)
    {
        Assert.Equal(valid, LeaseName.IsValid(key));
        Assert.True(LeaseName.IsValid(new string('k', 200)));
        Assert.False(LeaseName.IsValid(new string('k', 201)));
    }

    [Fact]
    public async Task Disposing_an_idempotent_replay_releases_the_lock_like_the_original()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Disposing_an_idempotent_replay_releases_the_lock_like_the_original)));
        var request = new AcquireRequest(30_000, IdempotencyKey: "retry-" + Guid.NewGuid().ToString("N"));
        var original = await Engine.AcquireAsync(name, request);

        await using (var replay = await Engine.AcquireAsync(name, request))
        {
            Assert.True(replay.Replayed);
            Assert.Equal(original.Lease!.Token, replay.Lease!.Token);
        }

        Assert.Null(await Engine.InspectAsync(name));
    }

    [Fact]
    public async Task A_replay_whose_caller_is_gone_leaves_the_lock_to_the_request_that_obtained_it()
    {
        // Hedged retries: the first request got the lock and answered; its twin, a replay, finds its client gone at the
        // moment it would answer (a request that waits, with its cancellation already signalled).
        var name = LeaseName.Of(Keys.Unique(nameof(A_replay_whose_caller_is_gone_leaves_the_lock_to_the_request_that_obtained_it)));
        var request = new AcquireRequest(30_000, WaitMs: 5_000, IdempotencyKey: "hedge-" + Guid.NewGuid().ToString("N"));
        var original = await Engine.AcquireAsync(name, request);
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Engine.AcquireAsync(name, request, gone.Token));

        Assert.True(original.Acquired);
        Assert.NotNull((await Engine.CheckAsync(name, original.Lease!.Token)).Info);

        // A request that obtained a lock itself as its caller went away still releases it.
        var other = LeaseName.Of(Keys.Unique(nameof(A_replay_whose_caller_is_gone_leaves_the_lock_to_the_request_that_obtained_it)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Engine.AcquireAsync(other, request, gone.Token));
        Assert.Null(await Engine.InspectAsync(other));
    }

    [Fact]
    public async Task A_waiter_whose_expiry_timer_fires_the_moment_it_is_set_still_gets_the_lock_at_the_expiry()
    {
        // The timer's thread can run its callback before the thread that set the timer reaches its next line (a pre-emption
        // of the timer's due time, 1 ms or more): a clock whose timers fire as they are created makes that happen every time.
        var name = LeaseName.Of(Keys.Unique(nameof(A_waiter_whose_expiry_timer_fires_the_moment_it_is_set_still_gets_the_lock_at_the_expiry)));
        using var engine = TestLocks.Create(
            fixture.Redis.Redis, new LeaseOptions { RecheckMs = 60_000 }, new RedisOptions { ConnectionString = fixture.Redis.ConnectionString }, new TimersFiringAsCreated());
        var holder = await engine.AcquireAsync(name, new AcquireRequest(300));

        var waiter = await engine.AcquireAsync(name, new AcquireRequest(5_000, WaitMs: 10_000)).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(waiter.Acquired);
        Assert.True(waiter.Lease!.FencingToken > holder.Lease!.FencingToken, "fencing tokens must increase");
    }

    [Theory]
    [InlineData(0, 0, null, null, "ttlMs")]
    [InlineData(86_400_001, 0, null, null, "ttlMs")]
    [InlineData(5_000, -1, null, null, "waitMs")]
    [InlineData(5_000, 60_001, null, null, "waitMs")]
    [InlineData(5_000, 0, "", null, "owner")]
    [InlineData(5_000, 0, "line\nbreak", null, "owner")]
    [InlineData(5_000, 0, null, "caf\u00e9", "Idempotency-Key")]
    [InlineData(5_000, 0, null, "", "Idempotency-Key")]
    public async Task The_engine_rejects_an_acquire_outside_its_limits_naming_the_field_and_writes_nothing(
        long ttlMs, long waitMs, string? owner, string? idempotencyKey, string field)
    {
        var name = LeaseName.Of(Keys.Unique(nameof(The_engine_rejects_an_acquire_outside_its_limits_naming_the_field_and_writes_nothing)));

        var error = await Assert.ThrowsAsync<ArgumentException>(() => Engine.AcquireAsync(name, new AcquireRequest(ttlMs, waitMs, owner, idempotencyKey)));

        Assert.Equal(field, error.ParamName);
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.False(await Db.KeyExistsAsync(LockKeys.For("lock:", name).Lock));
        Assert.False(await Db.KeyExistsAsync(LockKeys.For("lock:", name).Fence));
    }

    [Fact]
    public async Task The_engine_rejects_an_extend_outside_its_limits_and_the_lock_keeps_its_ttl()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(The_engine_rejects_an_extend_outside_its_limits_and_the_lock_keeps_its_ttl)));
        var lease = (await Engine.AcquireAsync(name, new AcquireRequest(10_000))).Lease!;

        var error = await Assert.ThrowsAsync<ArgumentException>(() => Engine.ExtendAsync(name, lease.Token, new ExtendRequest(0)));

        Assert.Equal("ttlMs", error.ParamName);
        Assert.InRange((await Engine.CheckAsync(name, lease.Token)).Info!.TtlMs, 5_000, 10_000);
    }

    [Fact]
    public async Task A_lock_an_older_version_wrote_as_a_hash_stays_held_and_its_token_releases_it()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(A_lock_an_older_version_wrote_as_a_hash_stays_held_and_its_token_releases_it)));
        var keys = LockKeys.For("lock:", name);
        var token = LeaseToken.New();
        await Db.HashSetAsync(keys.Lock, [new("token", token), new("fence", 41), new("ttl", 30_000), new("owner", "v1")]);
        await Db.KeyExpireAsync(keys.Lock, TimeSpan.FromSeconds(30));

        var info = await Engine.InspectAsync(name);
        Assert.Equal(41, info!.FencingToken);
        Assert.Equal("v1", info.Owner);
        Assert.Equal(AcquireStatus.Held, (await Engine.AcquireAsync(name, new AcquireRequest(5_000))).Status);
        Assert.Equal(LeaseEnd.Unknown, (await Engine.ReleaseAsync(name, LeaseToken.New())).Ended);
        Assert.NotNull((await Engine.ExtendAsync(name, token, new ExtendRequest(20_000))).Lease);

        Assert.True((await Engine.ReleaseAsync(name, token)).Released);
        Assert.Equal(LeaseEnd.Released, (await Engine.CheckAsync(name, token)).Ended);
        var next = (await Engine.AcquireAsync(name, new AcquireRequest(5_000))).Lease!;
        Assert.True(next.FencingToken > 41);
    }

    [Fact]
    public void The_scripts_lease_record_states_decode_to_the_reasons_the_engine_reports()
    {
        static LeaseEnd Decoded(string state) => LeaseScripts.EndOf(long.Parse(state, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(LeaseEnd.Released, Decoded(LeaseScripts.ReleasedState));
        Assert.Equal(LeaseEnd.Forced, Decoded(LeaseScripts.ForcedState));
        Assert.Equal(LeaseEnd.Expired, Decoded(LeaseScripts.ExpiredState));
        Assert.Equal(LeaseEnd.Unknown, Decoded(LeaseScripts.UnknownState));
        Assert.Equal(LeaseEnd.Unknown, LeaseScripts.EndOf(99));
        Assert.DoesNotContain(LeaseScripts.HeldState, new[] { LeaseScripts.ReleasedState, LeaseScripts.ForcedState, LeaseScripts.ExpiredState, LeaseScripts.UnknownState });
    }
}

/// <summary>The system's clock, except that a timer also fires once as it is created, before its creator gets it back.</summary>
internal sealed class TimersFiringAsCreated : TimeProvider
{
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        callback(state);
        return System.CreateTimer(callback, state, dueTime, period);
    }
}
