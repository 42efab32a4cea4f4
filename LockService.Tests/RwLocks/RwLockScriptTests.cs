using LockService.Core.Leases;
using LockService.Core.RwLocks;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.RwLocks;

/// <summary>
/// The read/write lock scripts against a real Redis: many readers or one writer, waiting writers' marks, fencing across
/// modes, why a lease ended, expiry by Redis's clock, and what the notices say.
/// </summary>
public sealed class RwLockScriptTests(RedisFixture fixture) : IClassFixture<RedisFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private RwScripts Scripts => new(fixture.Redis);

    private static string Key(string test) => Keys.Unique(test);

    [Fact]
    public async Task Many_readers_hold_at_once_each_with_its_own_token_and_a_higher_fencing_token()
    {
        var key = Key(nameof(Many_readers_hold_at_once_each_with_its_own_token_and_a_higher_fencing_token));
        var readers = new List<(string Token, RwAcquired Lease)>();
        for (var i = 0; i < 20; i++)
        {
            readers.Add(await Scripts.HoldAsync(key, RwLockMode.Read, owner: $"reader-{i}"));
        }

        var inspect = await Scripts.InspectAsync(key);

        Assert.Equal(Enumerable.Range(1, 20), readers.Select(r => r.Lease.Held));
        Assert.Equal(20, readers.Select(r => r.Token).Distinct().Count());
        Fences.AssertStrictlyIncreasing(readers.Select(r => r.Lease.FencingToken).ToList());
        Assert.All(readers, r => Fences.AssertTimeBased(r.Lease.FencingToken));
        Assert.Equal(20, inspect.Held);
        Assert.Equal(RwLockMode.Read, inspect.Mode);
        Assert.False(inspect.Truncated);
        Assert.Equal(0, inspect.WritersWaiting);
        Assert.All(inspect.Holders, h => Assert.Equal(RwLockMode.Read, h.Mode));
        Assert.Equal(
            readers.Select(r => r.Lease.FencingToken).Order(),
            inspect.Holders.Select(h => h.FencingToken).Order());
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"reader-{i}").Order(), inspect.Holders.Select(h => h.Owner!).Order());
    }

    [Fact]
    public async Task A_writer_holds_alone_and_is_refused_while_anyone_holds()
    {
        var key = Key(nameof(A_writer_holds_alone_and_is_refused_while_anyone_holds));
        var (first, _) = await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 20_000);
        await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 30_000);

        var writeWhileRead = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken()));
        Assert.False(writeWhileRead.WriterHolds);
        Assert.Equal(2, writeWhileRead.Held);
        Assert.Equal(0, writeWhileRead.WritersWaiting);
        Assert.InRange(writeWhileRead.RetryAfterMs, 15_000, 20_000);   // the earliest reader's expiry, not the latest's

        Assert.True((await Scripts.ForceReleaseAsync(key)).Released.Count == 2);
        var (writer, _) = await Scripts.HoldAsync(key, RwLockMode.Write, ttlMs: 10_000);
        var readWhileWrite = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
        var writeWhileWrite = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken()));
        var inspect = await Scripts.InspectAsync(key);

        Assert.True(readWhileWrite.WriterHolds);
        Assert.Equal(1, readWhileWrite.Held);
        Assert.InRange(readWhileWrite.RetryAfterMs, 5_000, 10_000);
        Assert.True(writeWhileWrite.WriterHolds);
        Assert.Equal(RwLockMode.Write, inspect.Mode);
        Assert.Equal(RwLockMode.Write, Assert.Single(inspect.Holders).Mode);
        Assert.Equal(LeaseEnd.Forced, (await Scripts.CheckAsync(key, first)).Ended);
        Assert.True((await Scripts.ReleaseAsync(key, writer)).Released);
        Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
    }

    [Fact]
    public async Task A_waiting_writers_mark_keeps_new_readers_out_but_not_the_readers_already_in_and_goes_when_the_writer_gets_it()
    {
        var key = Key(nameof(A_waiting_writers_mark_keeps_new_readers_out_but_not_the_readers_already_in_and_goes_when_the_writer_gets_it));
        var (reader, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        var writer = RwScripts.NewToken();
        var mark = Guid.NewGuid().ToString("N");

        var waiting = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, writer, mark: mark, markTtlMs: 5_000));
        var heldBack = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
        var stillIn = await Scripts.CheckAsync(key, reader);
        var inspect = await Scripts.InspectAsync(key);

        Assert.Equal(1, waiting.WritersWaiting);
        Assert.False(heldBack.WriterHolds);
        Assert.Equal(1, heldBack.Held);
        Assert.Equal(1, heldBack.WritersWaiting);
        Assert.InRange(heldBack.RetryAfterMs, 1, 5_000);   // the mark's expiry comes before the reader's
        Assert.NotNull(stillIn.Held);
        Assert.Equal(1, inspect.WritersWaiting);
        Assert.Equal(RwLockMode.Read, inspect.Mode);

        Assert.True((await Scripts.ReleaseAsync(key, reader)).Released);
        var granted = Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Write, writer, mark: mark, markTtlMs: 5_000));
        Assert.Equal(1, granted.Held);
        Assert.Equal(0, (await Scripts.InspectAsync(key)).WritersWaiting);
        Assert.True((await Scripts.ReleaseAsync(key, writer)).Released);
        Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
    }

    [Fact]
    public async Task A_writer_that_gives_up_removes_its_mark_and_announces_it_so_held_back_readers_come_in()
    {
        var key = Key(nameof(A_writer_that_gives_up_removes_its_mark_and_announces_it_so_held_back_readers_come_in));
        await Scripts.HoldAsync(key, RwLockMode.Read);
        var mark = Guid.NewGuid().ToString("N");
        Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken(), mark: mark, markTtlMs: 30_000));
        Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
        var notices = await Scripts.ListenAsync(key);

        var removed = await Scripts.UnmarkAsync(key, mark);
        var again = await Scripts.UnmarkAsync(key, mark);

        Assert.True(removed.Removed);
        Assert.False(again.Removed);
        var notice = await NextNoticeAsync(notices);
        Assert.Equal(new RwLockNotice(RwFreed.WriterMark, 1, false, 0), notice);
        Assert.True(notice.OpenToReaders);
        Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
    }

    [Fact]
    public async Task An_expired_mark_counts_for_nothing_by_redis_time_and_a_renewed_one_keeps_readers_out()
    {
        var key = Key(nameof(An_expired_mark_counts_for_nothing_by_redis_time_and_a_renewed_one_keeps_readers_out));
        var lapsing = Guid.NewGuid().ToString("N");
        var renewed = Guid.NewGuid().ToString("N");
        await Scripts.HoldAsync(key, RwLockMode.Read);
        Assert.Equal(1, (await Scripts.MarkAsync(key, lapsing, ttlMs: 200)).WritersWaiting);
        Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));

        // The mark's owner died: nobody renews it, and a reader gets in once Redis's clock passes its expiry.
        var started = DateTime.UtcNow;
        var reader = await RwScripts.UntilAsync(
            () => Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()), r => r is RwAcquired, Deadline);
        Assert.IsType<RwAcquired>(reader);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(100), Deadline);
        Assert.Equal(0, (await Scripts.InspectAsync(key)).WritersWaiting);

        // A mark renewed well within its TTL never lapses.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(1, (await Scripts.MarkAsync(key, renewed, ttlMs: 2_000)).WritersWaiting);
            Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
        }
    }

    [Fact]
    public async Task Fencing_tokens_increase_across_modes_in_one_sequence_and_past_a_last_token_ahead_of_the_clock()
    {
        var key = Key(nameof(Fencing_tokens_increase_across_modes_in_one_sequence_and_past_a_last_token_ahead_of_the_clock));
        var fences = new List<long>();
        foreach (var mode in new[] { RwLockMode.Read, RwLockMode.Read, RwLockMode.Write, RwLockMode.Read, RwLockMode.Write })
        {
            // Two readers in a row share the name; a writer comes in after both, and a reader after the writer.
            if (mode == RwLockMode.Write || (await Scripts.InspectAsync(key)).WriterHolds)
            {
                await Scripts.ForceReleaseAsync(key);
            }

            var (_, lease) = await Scripts.HoldAsync(key, mode);
            fences.Add(lease.FencingToken);
            Assert.Equal(lease.FencingToken, long.Parse((string)(await Scripts.Db.StringGetAsync(RwScripts.KeysOf(key).Fence))!, System.Globalization.CultureInfo.InvariantCulture));
        }

        // A last token ahead of Redis's clock (a clock stepped back, or written by hand): the next one is that plus one.
        await Scripts.ForceReleaseAsync(key);
        var ahead = fences[^1] + 60_000_000_000;
        await Scripts.Db.StringSetAsync(RwScripts.KeysOf(key).Fence, ahead);
        var (reader, afterRead) = await Scripts.HoldAsync(key, RwLockMode.Read);
        await Scripts.ReleaseAsync(key, reader);
        var (_, afterWrite) = await Scripts.HoldAsync(key, RwLockMode.Write);

        Fences.AssertStrictlyIncreasing(fences);
        Assert.Equal(ahead + 1, afterRead.FencingToken);
        Assert.Equal(ahead + 2, afterWrite.FencingToken);
        var fenceTtl = await Scripts.Db.KeyTimeToLiveAsync(RwScripts.KeysOf(key).Fence);
        Assert.InRange(fenceTtl!.Value, TimeSpan.FromMilliseconds(RwScripts.FenceRetentionMs), TimeSpan.FromMilliseconds(RwScripts.FenceRetentionMs + 30_000));
    }

    [Fact]
    public async Task A_last_fencing_token_that_nothing_below_2_pow_53_exceeds_is_baddata_and_nothing_is_acquired()
    {
        var key = Key(nameof(A_last_fencing_token_that_nothing_below_2_pow_53_exceeds_is_baddata_and_nothing_is_acquired));
        var keys = RwScripts.KeysOf(key);
        await Scripts.Db.StringSetAsync(keys.Fence, "9007199254740991");

        var error = await Assert.ThrowsAsync<RedisServerException>(() => Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken()));

        Assert.StartsWith($"{LeaseScripts.BadData} {keys.Fence} ", error.Message);
        Assert.False(await Scripts.Db.KeyExistsAsync(keys.Held));
        Assert.False(await Scripts.Db.KeyExistsAsync(keys.Holders));
        Assert.Equal("9007199254740991", (string?)await Scripts.Db.StringGetAsync(keys.Fence));
    }

    [Fact]
    public async Task Every_reason_is_reported_released_forced_expired_and_unknown_by_check_extend_and_release()
    {
        var key = Key(nameof(Every_reason_is_reported_released_forced_expired_and_unknown_by_check_extend_and_release));
        var (released, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        var (forcedOne, forcedLease) = await Scripts.HoldAsync(key, RwLockMode.Read, owner: "forced-one");
        var (forcedAll, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        Assert.True((await Scripts.ReleaseAsync(key, released)).Released);

        var one = await Scripts.ForceReleaseAsync(key, forcedLease.FencingToken);
        var none = await Scripts.ForceReleaseAsync(key, forcedLease.FencingToken);
        var all = await Scripts.ForceReleaseAsync(key);
        var (expired, _) = await Scripts.HoldAsync(key, RwLockMode.Write, ttlMs: 100);
        await RwScripts.UntilAsync(() => Scripts.CheckAsync(key, expired), c => c.Held is null, Deadline);

        var forcedHolder = Assert.Single(one.Released);
        Assert.Equal((RwLockMode.Read, forcedLease.FencingToken, "forced-one"), (forcedHolder.Mode, forcedHolder.FencingToken, forcedHolder.Owner));
        Assert.Empty(none.Released);
        Assert.Single(all.Released);
        foreach (var (token, reason) in new[] { (released, LeaseEnd.Released), (forcedOne, LeaseEnd.Forced), (forcedAll, LeaseEnd.Forced), (expired, LeaseEnd.Expired), (RwScripts.NewToken(), LeaseEnd.Unknown) })
        {
            Assert.Equal(reason, (await Scripts.CheckAsync(key, token)).Ended);
            Assert.Equal(reason, (await Scripts.ExtendAsync(key, token)).Ended);
            var release = await Scripts.ReleaseAsync(key, token);
            Assert.False(release.Released);
            Assert.Equal(reason, release.Ended);
        }
    }

    [Fact]
    public async Task A_lease_expires_by_redis_time_frees_its_place_and_is_never_brought_back()
    {
        var key = Key(nameof(A_lease_expires_by_redis_time_frees_its_place_and_is_never_brought_back));
        var (writer, _) = await Scripts.HoldAsync(key, RwLockMode.Write, ttlMs: 300);
        var refused = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken()));
        Assert.InRange(refused.RetryAfterMs, 1, 300);

        var next = await RwScripts.UntilAsync(
            () => Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken(), ttlMs: 30_000), r => r is RwAcquired, Deadline);

        Assert.IsType<RwAcquired>(next);
        Assert.Null((await Scripts.ExtendAsync(key, writer, 30_000)).Held);
        Assert.Equal(LeaseEnd.Expired, (await Scripts.CheckAsync(key, writer)).Ended);
        Assert.Equal(1, (await Scripts.InspectAsync(key)).Held);
    }

    [Fact]
    public async Task A_lease_that_expired_among_others_is_announced_when_a_script_finds_it()
    {
        var key = Key(nameof(A_lease_that_expired_among_others_is_announced_when_a_script_finds_it));
        var (shortLived, _) = await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 200);
        var (staying, _) = await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 30_000);
        var notices = await Scripts.ListenAsync(key);

        // A check of the other lease finds the expired one once Redis's clock passes its expiry, drops it and says so.
        await RwScripts.UntilAsync(async () => (await Scripts.InspectAsync(key)).Held, held => held == 1, Deadline);

        Assert.Equal(new RwLockNotice(RwFreed.ReadLease, 1, false, 0), await NextNoticeAsync(notices));
        Assert.Equal(LeaseEnd.Expired, (await Scripts.CheckAsync(key, shortLived)).Ended);
        Assert.NotNull((await Scripts.CheckAsync(key, staying)).Held);
    }

    [Fact]
    public async Task Extend_sets_the_ttl_from_now_cut_to_the_hold_cap_and_announces_a_shorter_one()
    {
        var key = Key(nameof(Extend_sets_the_ttl_from_now_cut_to_the_hold_cap_and_announces_a_shorter_one));
        var (reader, lease) = await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 10_000, owner: "me", maxHoldMs: 20_000);
        var notices = await Scripts.ListenAsync(key);

        var longer = (await Scripts.ExtendAsync(key, reader, 60_000)).Held!;
        var shorter = (await Scripts.ExtendAsync(key, reader, 5_000)).Held!;
        var acquiredWith = (await Scripts.ExtendAsync(key, reader)).Held!;

        Assert.InRange(longer.TtlMs, 19_000, 20_000);   // what is left of the 20 s cap
        Assert.Equal(5_000, shorter.TtlMs);
        Assert.Equal(10_000, acquiredWith.TtlMs);
        Assert.All(new[] { longer, shorter, acquiredWith }, h => Assert.Equal((RwLockMode.Read, lease.FencingToken, "me", 20_000L, lease.NowMs), (h.Mode, h.FencingToken, h.Owner!, h.MaxHoldMs!.Value, h.AcquiredAtMs)));
        Assert.Equal(LeaseNotices.Shortened, await NextMessageAsync(notices));
    }

    [Fact]
    public async Task An_acquire_retried_with_its_idempotency_key_gets_the_same_lease_as_it_stands_in_its_own_mode()
    {
        var key = Key(nameof(An_acquire_retried_with_its_idempotency_key_gets_the_same_lease_as_it_stands_in_its_own_mode));
        var token = RwScripts.NewToken();
        var first = Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Write, token, ttlMs: 30_000, owner: "job", idempotencyKey: "retry-1", maxHoldMs: 60_000));

        var replay = Assert.IsType<RwReplayed>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken(), ttlMs: 10_000, idempotencyKey: "retry-1"));
        await Scripts.ReleaseAsync(key, token);
        var after = await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken(), ttlMs: 10_000, idempotencyKey: "retry-1");

        Assert.Equal((token, RwLockMode.Write, first.FencingToken, first.NowMs, 60_000L, "job"), (replay.Token, replay.Mode, replay.FencingToken, replay.AcquiredAtMs, replay.MaxHoldMs!.Value, replay.Owner!));
        Assert.InRange(replay.TtlMs, 25_000, 30_000);
        Assert.Equal(replay.ExpiresAtMs, first.NowMs + 30_000);
        Assert.IsType<RwAcquired>(after);
    }

    [Fact]
    public async Task Inspection_shows_at_most_the_leases_asked_for_never_a_token_and_says_truncated()
    {
        var key = Key(nameof(Inspection_shows_at_most_the_leases_asked_for_never_a_token_and_says_truncated));
        for (var i = 0; i < 5; i++)
        {
            await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 10_000 + i);
        }

        var raw = (RedisResult[])(await Scripts.RunAsync(RwLockScripts.Inspect, key, 3))!;
        var inspect = await Scripts.InspectAsync(key, most: 3);
        var empty = await Scripts.InspectAsync(Key("free"));

        Assert.Equal(5, inspect.Held);
        Assert.Equal(3, inspect.Holders.Count);
        Assert.True(inspect.Truncated);
        Assert.All(raw, v => Assert.DoesNotMatch("^[0-9a-f]{32}$", v.ToString()));
        Assert.Equal(0, empty.Held);
        Assert.Empty(empty.Holders);
    }

    [Fact]
    public async Task The_notices_say_what_was_freed_and_the_state_left_last_reader_writer_and_a_reader_among_others()
    {
        var key = Key(nameof(The_notices_say_what_was_freed_and_the_state_left_last_reader_writer_and_a_reader_among_others));
        var (a, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        var (b, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        var mark = Guid.NewGuid().ToString("N");
        var writer = RwScripts.NewToken();
        Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, writer, mark: mark, markTtlMs: 30_000));
        var notices = await Scripts.ListenAsync(key);

        await Scripts.ReleaseAsync(key, a);
        var oneLeft = await NextNoticeAsync(notices);
        await Scripts.ReleaseAsync(key, b);
        var lastReader = await NextNoticeAsync(notices);
        Assert.IsType<RwAcquired>(await Scripts.AcquireAsync(key, RwLockMode.Write, writer, mark: mark));
        await Scripts.ReleaseAsync(key, writer);
        var writerLeft = await NextNoticeAsync(notices);

        Assert.Equal(new RwLockNotice(RwFreed.ReadLease, 1, false, 1), oneLeft);
        Assert.Equal(new RwLockNotice(RwFreed.ReadLease, 0, false, 1), lastReader);
        Assert.True(lastReader.Free);
        Assert.Equal(new RwLockNotice(RwFreed.WriteLease, 0, false, 0), writerLeft);
        Assert.True(writerLeft.OpenToReaders);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Every_script_on_a_key_of_another_type_is_baddata_naming_it_and_leaves_no_lease(int index)
    {
        var key = Key($"wrongtype-rw-{index}");
        var keys = RwScripts.KeysOf(key);
        var wrong = (string)keys.All[index]!;
        await Scripts.Db.ListRightPushAsync(wrong, "not a read/write lock");
        var token = RwScripts.NewToken();

        var calls = new List<Func<Task>>
        {
            () => Scripts.AcquireAsync(key, RwLockMode.Read, token, owner: "me", idempotencyKey: "k", maxHoldMs: 60_000),
            () => Scripts.AcquireAsync(key, RwLockMode.Write, token, mark: "m"),
            () => Scripts.ExtendAsync(key, token),
        };
        if (index != 2)
        {
            // The fence is touched only where a lease is granted or extended.
            calls.Add(() => Scripts.ReleaseAsync(key, token));
            calls.Add(() => Scripts.CheckAsync(key, token));
            calls.Add(() => Scripts.ForceReleaseAsync(key));
        }

        foreach (var call in calls)
        {
            var error = await Assert.ThrowsAsync<RedisServerException>(call);
            Assert.Equal($"{LeaseScripts.BadData} {wrong} {LeaseScripts.WrongType}", error.Message);
        }

        foreach (var other in keys.All.Where(k => k != wrong))
        {
            Assert.False(await Scripts.Db.KeyExistsAsync(other), $"{other} was written");
        }

        Assert.Equal(RedisType.List, await Scripts.Db.KeyTypeAsync(wrong));
    }

    [Fact]
    public async Task A_lease_record_written_by_hand_is_baddata_and_force_release_of_all_releases_nothing()
    {
        var key = Key(nameof(A_lease_record_written_by_hand_is_baddata_and_force_release_of_all_releases_nothing));
        var keys = RwScripts.KeysOf(key);
        var (good, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        var (spoiled, _) = await Scripts.HoldAsync(key, RwLockMode.Read);
        await Scripts.Db.HashSetAsync(keys.Holders, spoiled, "r not-a-number");

        var check = await Assert.ThrowsAsync<RedisServerException>(() => Scripts.CheckAsync(key, spoiled));
        var force = await Assert.ThrowsAsync<RedisServerException>(() => Scripts.ForceReleaseAsync(key));

        Assert.Equal($"{LeaseScripts.BadData} {keys.Holders} {RwLockScripts.BadRecord}", check.Message);
        Assert.Equal(check.Message, force.Message);
        Assert.NotNull((await Scripts.CheckAsync(key, good)).Held);
    }

    [Fact]
    public async Task A_holder_whose_record_was_deleted_by_hand_keeps_everyone_out_until_its_expiry()
    {
        var key = Key(nameof(A_holder_whose_record_was_deleted_by_hand_keeps_everyone_out_until_its_expiry));
        await Scripts.HoldAsync(key, RwLockMode.Read, ttlMs: 30_000);
        await Scripts.Db.KeyDeleteAsync(RwScripts.KeysOf(key).Holders);

        var read = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Read, RwScripts.NewToken()));
        var write = Assert.IsType<RwRefused>(await Scripts.AcquireAsync(key, RwLockMode.Write, RwScripts.NewToken()));

        Assert.True(read.WriterHolds);
        Assert.True(write.WriterHolds);
        Assert.InRange(read.RetryAfterMs, 25_000, 30_000);
    }

    [Theory]
    [InlineData("freed r 3 0 1", nameof(RwFreed.ReadLease), 3, false, 1)]
    [InlineData("freed w 0 0 0", nameof(RwFreed.WriteLease), 0, false, 0)]
    [InlineData("freed m 1 1 12", nameof(RwFreed.WriterMark), 1, true, 12)]
    public void A_notice_reads_back_as_published(string text, string what, int held, bool writer, int waiting)
    {
        Assert.True(RwLockMessages.TryParse(text, out var notice));
        Assert.Equal(new RwLockNotice(Enum.Parse<RwFreed>(what), held, writer, waiting), notice);
    }

    [Theory]
    [InlineData("released")]
    [InlineData("freed")]
    [InlineData("freed x 1 0 0")]
    [InlineData("freed r 1 2 0")]
    [InlineData("freed r 1 0")]
    [InlineData("freed r 1 0 0 0")]
    [InlineData("freed r -1 0 0")]
    [InlineData("freed r 1 0 0 ")]
    public void Anything_else_is_not_a_notice(string text)
    {
        Assert.False(RwLockMessages.TryParse(text, out _));
    }

    private static async Task<RwLockNotice> NextNoticeAsync(System.Threading.Channels.ChannelReader<string> messages)
    {
        while (true)
        {
            var message = await NextMessageAsync(messages);
            if (RwLockMessages.TryParse(message, out var notice))
            {
                return notice;
            }
        }
    }

    private static async Task<string> NextMessageAsync(System.Threading.Channels.ChannelReader<string> messages)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        return await messages.ReadAsync(timeout.Token);
    }
}
