using System.Diagnostics;
using LockService.Core.Leases;
using LockService.Core.RwLocks;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.RwLocks;

/// <summary>
/// Two instances of the service, as far as waiting goes (two engines over one Redis), each with a re-check period far
/// longer than the bounds below: every hand-off measured here comes from a notice or an expiry timer, never from a poll.
/// </summary>
public sealed class RwLockEngineFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public TestRwLocks A { get; private set; } = null!;

    public TestRwLocks B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        A = Create();
        B = Create();
    }

    public Task DisposeAsync()
    {
        A.Dispose();
        B.Dispose();
        return Task.CompletedTask;
    }

    private TestRwLocks Create() =>
        TestRwLocks.Create(Redis.Redis, new LeaseOptions { RecheckMs = 30_000 }, new RedisOptions { ConnectionString = Redis.ConnectionString });
}

/// <summary>The read/write lock on the lease engine: who gets in, who is woken, and what a waiting writer holds back.</summary>
public sealed class RwLockEngineTests(RwLockEngineFixture fixture) : IClassFixture<RwLockEngineFixture>
{
    // Far below the re-check (30 s) and every TTL below, far above a hand-off (milliseconds): a miss cannot pass.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(2);

    private TestRwLocks A => fixture.A;

    private TestRwLocks B => fixture.B;

    private static LeaseName Name(string test) => LeaseName.Of(Keys.Unique(test));

    private static AcquireRequest Terms(long ttlMs = 30_000, long waitMs = 0) => new(ttlMs, waitMs);

    private static async Task<RwLease> HoldAsync(TestRwLocks instance, LeaseName name, RwLockMode mode, long ttlMs = 30_000)
    {
        var result = await instance.AcquireAsync(name, mode, Terms(ttlMs));
        Assert.True(result.Acquired, $"{mode} of {name.Key}");
        return result.Lease!;
    }

    [Fact]
    public async Task The_last_readers_release_hands_the_lock_to_a_writer_waiting_on_another_instance_at_once()
    {
        var name = Name(nameof(The_last_readers_release_hands_the_lock_to_a_writer_waiting_on_another_instance_at_once));
        var first = await HoldAsync(A, name, RwLockMode.Read);
        var second = await HoldAsync(A, name, RwLockMode.Read);
        var writer = B.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 20_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");

        Assert.True((await A.ReleaseAsync(name, first.Token)).Released);
        await Task.Delay(100);
        Assert.False(writer.IsCompleted, "a writer got in beside a reader");
        var released = Stopwatch.StartNew();
        Assert.True((await A.ReleaseAsync(name, second.Token)).Released);
        var granted = await writer.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(granted.Acquired);
        Assert.True(released.Elapsed < Prompt, $"the writer got it {released.ElapsedMilliseconds} ms after the last reader left");
        Assert.Equal(RwLockMode.Write, granted.Lease!.Mode);
        Assert.True(granted.Lease.FencingToken > second.FencingToken, "a writer's fencing token exceeds every earlier reader's");
        Assert.Equal(0, (await A.InspectAsync(name))!.WritersWaiting);
    }

    [Fact]
    public async Task A_writers_release_goes_to_the_next_writer_before_the_readers_that_waited_longer_and_then_to_every_reader_at_once()
    {
        var name = Name(nameof(A_writers_release_goes_to_the_next_writer_before_the_readers_that_waited_longer_and_then_to_every_reader_at_once));
        var holder = await HoldAsync(A, name, RwLockMode.Write);
        var readers = new[]
        {
            A.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000)),
            B.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000)),
            A.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000)),
        };
        await WaitUntilAsync(() => Task.FromResult(A.WaitingCount == 2 && B.WaitingCount == 1), "the readers wait");
        var writer = B.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 20_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");

        await A.ReleaseAsync(name, holder.Token);
        var next = await writer.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(100);
        Assert.All(readers, r => Assert.False(r.IsCompleted, "a reader got in before the waiting writer"));
        var released = Stopwatch.StartNew();
        await B.ReleaseAsync(name, next.Lease!.Token);
        var granted = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(released.Elapsed < Prompt, $"the readers got in {released.ElapsedMilliseconds} ms after the writer left");
        Assert.All(granted, r => Assert.Equal(RwLockMode.Read, r.Lease!.Mode));
        Assert.All(granted, r => Assert.True(r.Lease!.FencingToken > next.Lease.FencingToken));
        Assert.Equal(3, (await A.InspectAsync(name))!.Holders.Count);
    }

    [Fact]
    public async Task A_write_lease_that_expires_goes_at_its_expiry_to_the_waiting_writer_even_behind_readers_that_waited_longer()
    {
        // Expiries publish nothing: the queue's timer must wake the waiter that may try (the writer), not its head (a reader).
        var name = Name(nameof(A_write_lease_that_expires_goes_at_its_expiry_to_the_waiting_writer_even_behind_readers_that_waited_longer));
        var expiring = await HoldAsync(B, name, RwLockMode.Write, ttlMs: 500);
        var reader = A.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000));
        await WaitUntilAsync(() => Task.FromResult(A.WaitingCount == 1), "the reader waits");
        var writer = A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 20_000));

        var granted = await writer.WaitAsync(TimeSpan.FromSeconds(10));
        var inspected = await A.InspectAsync(name);

        Assert.True(granted.Acquired);
        Assert.True(granted.Lease!.AcquiredAt - expiring.ExpiresAt < Prompt, $"the writer got it {(granted.Lease.AcquiredAt - expiring.ExpiresAt).TotalMilliseconds} ms after the expiry");
        Assert.False(reader.IsCompleted, "a reader got in before the waiting writer");
        Assert.Equal(RwLockMode.Write, inspected!.Mode);
        await A.ReleaseAsync(name, granted.Lease.Token);
        Assert.True((await reader.WaitAsync(TimeSpan.FromSeconds(10))).Acquired);
    }

    [Fact]
    public async Task A_read_lease_shortened_on_one_instance_goes_to_a_writer_waiting_on_another_at_its_new_expiry()
    {
        var name = Name(nameof(A_read_lease_shortened_on_one_instance_goes_to_a_writer_waiting_on_another_at_its_new_expiry));
        var reader = await HoldAsync(A, name, RwLockMode.Read, ttlMs: 60_000);
        var writer = B.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 30_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");

        var shortened = (await A.ExtendAsync(name, reader.Token, new ExtendRequest(300))).Lease!;
        var granted = await writer.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(granted.Acquired);
        Assert.True(granted.Lease!.AcquiredAt - shortened.ExpiresAt < Prompt, $"the writer got it {(granted.Lease.AcquiredAt - shortened.ExpiresAt).TotalMilliseconds} ms after the shortened expiry");
    }

    [Fact]
    public async Task A_steady_stream_of_readers_on_two_instances_never_keeps_a_writer_out_longer_than_the_longest_read_lease_in_flight()
    {
        var name = Name(nameof(A_steady_stream_of_readers_on_two_instances_never_keeps_a_writer_out_longer_than_the_longest_read_lease_in_flight));
        const int ReadHoldMs = 200;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var readsAfterWriterCame = 0;
        var writerCame = false;

        // Eight loops that always keep readers in: each reads for 200 ms, then at once reads again.
        var loops = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            var instance = i % 2 == 0 ? A : B;
            while (!stop.IsCancellationRequested)
            {
                var read = await instance.AcquireAsync(name, RwLockMode.Read, Terms(ttlMs: 5_000, waitMs: 10_000));
                if (!read.Acquired)
                {
                    continue;
                }

                if (Volatile.Read(ref writerCame))
                {
                    Interlocked.Increment(ref readsAfterWriterCame);
                }

                await Task.Delay(ReadHoldMs);
                await instance.ReleaseAsync(name, read.Lease!.Token);
            }
        })).ToArray();
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.Holders.Count >= 4, "readers are in");

        var waited = Stopwatch.StartNew();
        Volatile.Write(ref writerCame, true);
        var writer = await A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 15_000));
        var writerWaited = waited.Elapsed;
        var inspected = await A.InspectAsync(name);
        await A.ReleaseAsync(name, writer.Lease!.Token);
        await stop.CancelAsync();
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(writer.Acquired, "the writer starved");
        Assert.Equal(RwLockMode.Write, Assert.Single(inspected!.Holders).Mode);

        // The readers in when the writer came finish within 200 ms (plus a request); a few may have been granted in the
        // same instant. Without writer preference the stream of new readers keeps it out until its wait runs out.
        Assert.True(writerWaited < TimeSpan.FromMilliseconds(ReadHoldMs) + Prompt, $"the writer waited {writerWaited.TotalMilliseconds} ms behind 200 ms read leases");
        Assert.True(readsAfterWriterCame <= 8, $"{readsAfterWriterCame} read leases were granted while the writer waited");
    }

    [Fact]
    public async Task A_waiting_writer_whose_client_goes_away_lets_the_readers_it_held_back_in_at_once()
    {
        var name = Name(nameof(A_waiting_writer_whose_client_goes_away_lets_the_readers_it_held_back_in_at_once));
        await HoldAsync(A, name, RwLockMode.Read);
        using var client = new CancellationTokenSource();
        var writer = A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 30_000), client.Token);
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");
        var reader = B.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000));
        await WaitUntilAsync(() => Task.FromResult(B.WaitingCount == 1), "the reader waits");
        await Task.Delay(100);
        Assert.False(reader.IsCompleted, "a reader got in while a writer waited");

        var gone = Stopwatch.StartNew();
        await client.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => writer);
        var granted = await reader.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(granted.Acquired);
        Assert.True(gone.Elapsed < Prompt, $"the reader got in {gone.ElapsedMilliseconds} ms after the writer's client went away");
        Assert.Equal(0, (await A.InspectAsync(name))!.WritersWaiting);
    }

    [Fact]
    public async Task A_waiting_writer_whose_wait_runs_out_stops_counting_and_the_readers_come_in()
    {
        var name = Name(nameof(A_waiting_writer_whose_wait_runs_out_stops_counting_and_the_readers_come_in));
        await HoldAsync(A, name, RwLockMode.Read);
        var writer = A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 1_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");
        var reader = B.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 20_000));

        var refused = await writer.WaitAsync(TimeSpan.FromSeconds(10));
        var gaveUp = Stopwatch.StartNew();
        var granted = await reader.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(AcquireStatus.Held, refused.Status);
        Assert.Equal((false, 1), (refused.Busy.WriterHolds, refused.Busy.Held));
        Assert.True(granted.Acquired);
        Assert.True(gaveUp.Elapsed < Prompt, $"the reader got in {gaveUp.ElapsedMilliseconds} ms after the writer gave up");
    }

    [Fact]
    public async Task A_mark_nobody_renews_any_more_stops_holding_readers_back_within_2_seconds()
    {
        // What a killed instance leaves: a mark that its renewals no longer reach.
        var name = Name(nameof(A_mark_nobody_renews_any_more_stops_holding_readers_back_within_2_seconds));
        var keys = RwLockKeys.For(A.Store.KeyPrefix, name);
        await HoldAsync(A, name, RwLockMode.Read);
        await new RwScripts(fixture.Redis.Redis).Db.ScriptEvaluateAsync(
            RwLockScripts.Mark, keys.All, [keys.Channel, "PUBLISH", "dead-instance-writer", (long)RwLockStore.MarkTtl.TotalMilliseconds]);
        var markedAt = Stopwatch.StartNew();

        var reader = await B.AcquireAsync(name, RwLockMode.Read, Terms(waitMs: 10_000));

        Assert.True(reader.Acquired);
        Assert.True(reader.Waited, "the mark held the reader back");
        Assert.True(markedAt.Elapsed < TimeSpan.FromSeconds(2), $"the reader got in {markedAt.ElapsedMilliseconds} ms after the last renewal");
    }

    [Fact]
    public async Task A_writer_that_waits_keeps_its_mark_alive_past_the_marks_own_ttl()
    {
        var name = Name(nameof(A_writer_that_waits_keeps_its_mark_alive_past_the_marks_own_ttl));
        var reader = await HoldAsync(A, name, RwLockMode.Read);
        var writer = A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 30_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");

        // Three mark lifetimes later new readers are still held back.
        var until = Stopwatch.StartNew();
        while (until.Elapsed < RwLockStore.MarkTtl * 3)
        {
            var read = await B.AcquireAsync(name, RwLockMode.Read, Terms());
            Assert.Equal(AcquireStatus.Held, read.Status);
            Assert.Equal(1, read.Busy.WritersWaiting);
            await Task.Delay(250);
        }

        await A.ReleaseAsync(name, reader.Token);
        Assert.True((await writer.WaitAsync(TimeSpan.FromSeconds(10))).Acquired);
    }

    [Fact]
    public async Task Readers_and_writers_on_two_instances_never_overlap_and_no_update_is_lost()
    {
        var name = Name(nameof(Readers_and_writers_on_two_instances_never_overlap_and_no_update_is_lost));
        var counter = 0L;
        var readersIn = 0;
        var writersIn = 0;
        var writes = 0;
        var reads = 0;
        var overlaps = new List<string>();
        var fences = new List<(long Fence, RwLockMode Mode)>();
        var deadline = Stopwatch.StartNew();

        var workers = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var instance = i % 2 == 0 ? A : B;
            var random = new Random(i);
            for (var round = 0; round < 25 && deadline.Elapsed < TimeSpan.FromSeconds(40); round++)
            {
                var mode = random.Next(4) == 0 ? RwLockMode.Write : RwLockMode.Read;
                var result = await instance.AcquireAsync(name, mode, Terms(ttlMs: 10_000, waitMs: 20_000));
                if (!result.Acquired)
                {
                    continue;
                }

                lock (fences)
                {
                    fences.Add((result.Lease!.FencingToken, mode));
                }

                if (mode == RwLockMode.Write)
                {
                    var others = Interlocked.Increment(ref writersIn) - 1 + Volatile.Read(ref readersIn);
                    var before = counter;      // a read-modify-write that only mutual exclusion keeps whole
                    await Task.Delay(random.Next(1, 5));
                    counter = before + 1;
                    Interlocked.Increment(ref writes);
                    if (others != 0)
                    {
                        lock (overlaps)
                        {
                            overlaps.Add($"a writer came in beside {others} other holders");
                        }
                    }

                    Interlocked.Decrement(ref writersIn);
                }
                else
                {
                    Interlocked.Increment(ref readersIn);
                    var writer = Volatile.Read(ref writersIn);
                    await Task.Delay(random.Next(1, 5));
                    Interlocked.Increment(ref reads);
                    if (writer != 0)
                    {
                        lock (overlaps)
                        {
                            overlaps.Add("a reader came in beside a writer");
                        }
                    }

                    Interlocked.Decrement(ref readersIn);
                }

                Assert.True((await instance.ReleaseAsync(name, result.Lease!.Token)).Released);
            }
        })).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(90));

        Assert.Empty(overlaps);
        Assert.Equal(writes, counter);
        Assert.True(writes > 0 && reads > 0, $"{writes} writes and {reads} reads");
        Assert.Equal(fences.Count, fences.Select(f => f.Fence).Distinct().Count());
    }

    [Fact]
    public async Task Fencing_tokens_rise_across_modes_and_a_writer_always_exceeds_every_reader_before_it()
    {
        var name = Name(nameof(Fencing_tokens_rise_across_modes_and_a_writer_always_exceeds_every_reader_before_it));
        var readers = new[] { await HoldAsync(A, name, RwLockMode.Read), await HoldAsync(B, name, RwLockMode.Read), await HoldAsync(A, name, RwLockMode.Read) };
        var writer = A.AcquireAsync(name, RwLockMode.Write, Terms(waitMs: 20_000));
        await WaitUntilAsync(async () => (await A.InspectAsync(name))?.WritersWaiting == 1, "the writer waits");
        foreach (var reader in readers)
        {
            await A.ReleaseAsync(name, reader.Token);
        }

        var written = (await writer.WaitAsync(TimeSpan.FromSeconds(10))).Lease!;
        await A.ReleaseAsync(name, written.Token);
        var after = await HoldAsync(B, name, RwLockMode.Read);

        Fences.AssertStrictlyIncreasing([.. readers.Select(r => r.FencingToken), written.FencingToken, after.FencingToken]);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new TimeoutException($"Not within 10 s: {what}.");
            }

            await Task.Delay(10);
        }
    }
}
