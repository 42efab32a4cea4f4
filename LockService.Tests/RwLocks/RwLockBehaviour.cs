using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.RwLocks;

/// <summary>
/// What every Redis topology must show of read/write locks through HTTP: one copy of the tests, run by each topology's test
/// class (<see cref="RwLockApiTests"/> on one Redis, <see cref="Scale.ClusterRwLockTests"/> on a Redis Cluster).
/// </summary>
public abstract class RwLockBehaviour : TopologyBehaviour
{
    [TopologyFact]
    public async Task Readers_share_a_writer_waits_for_them_and_every_body_says_the_mode_as_the_contract_says()
    {
        var key = Keys.Unique(nameof(Readers_share_a_writer_waits_for_them_and_every_body_says_the_mode_as_the_contract_says));

        var first = await Client.AcquireRwAsync(key, "mode=read&ttlMs=30000&owner=reader-a");
        var second = await Client.AcquireRwOkAsync(key, "mode=read&ttlMs=20000");
        var refused = await Client.AcquireRwAsync(key, "mode=write");
        var inspected = await Client.InspectRwAsync(key);

        Assert.Equal(HttpStatusCode.Created, first.Status);
        var lease = first.Lease;
        Assert.Equal($"/rwlocks/{key}/{lease.Token}", first.Headers.Location!.OriginalString);
        Assert.Equal((key, "read", 30_000L, "reader-a"), (lease.Key, lease.Json.GetProperty("mode").GetString(), lease.TtlMs, lease.Json.GetProperty("owner").GetString()));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, lease.Json.GetProperty("maxHoldMs").ValueKind);
        Fences.AssertTimeBased(lease.FencingToken);
        Assert.True(second.FencingToken > lease.FencingToken);

        var problem = refused.AssertProblem(HttpStatusCode.Conflict, "rwlock_held");
        Assert.InRange(problem.GetProperty("retryAfterMs").GetInt64(), 10_000, 20_000);   // the earliest reader's expiry
        Assert.Contains("2 readers hold it", problem.GetProperty("detail").GetString());
        Assert.NotNull(refused.Headers.RetryAfter);

        Assert.Equal(HttpStatusCode.OK, inspected.Status);
        Assert.Equal(("read", 0, false), (inspected.Json.GetProperty("mode").GetString(), inspected.Json.GetProperty("writersWaiting").GetInt32(), inspected.Json.GetProperty("truncated").GetBoolean()));
        Assert.Equal(2, inspected.Json.GetProperty("holders").GetArrayLength());
        Assert.All(inspected.Json.GetProperty("holders").EnumerateArray(), h => Assert.Equal("read", h.GetProperty("mode").GetString()));
        Assert.DoesNotContain(lease.Token, inspected.Body);
        Assert.DoesNotContain(second.Token, inspected.Body);

        var check = await Client.CheckRwAsync(key, lease.Token);
        var extended = await Client.ExtendRwAsync(key, lease.Token, "ttlMs=60000");
        Assert.Equal(HttpStatusCode.OK, check.Status);
        Assert.Equal(("read", lease.FencingToken), (check.Json.GetProperty("mode").GetString(), check.Json.GetProperty("fencingToken").GetInt64()));
        Assert.DoesNotContain(lease.Token, check.Body);
        Assert.Equal((60_000L, lease.FencingToken), (extended.Lease.TtlMs, extended.Lease.FencingToken));

        // A writer that waits holds new readers back; when the last reader leaves it gets the lock.
        var writer = Client.AcquireRwAsync(key, "mode=write&waitMs=20000");
        await UntilAsync(async () => (await Client.InspectRwAsync(key)).Json.GetProperty("writersWaiting").GetInt32() == 1, "the writer waits");
        var heldBack = await Client.AcquireRwAsync(key, "mode=read");
        Assert.Contains("1 writer is waiting", heldBack.AssertProblem(HttpStatusCode.Conflict, "rwlock_held").GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseRwAsync(key, second.Token)).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseRwAsync(key, lease.Token)).Status);
        var written = await writer.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Created, written.Status);
        Assert.Equal("write", written.Lease.Json.GetProperty("mode").GetString());
        Assert.True(written.Lease.FencingToken > second.FencingToken);
        var whileWriting = await Client.AcquireRwAsync(key, "mode=read");
        Assert.Contains("a writer holds it", whileWriting.AssertProblem(HttpStatusCode.Conflict, "rwlock_held").GetProperty("detail").GetString());
        Assert.Equal("write", (await Client.InspectRwAsync(key)).Json.GetProperty("mode").GetString());

        Assert.Equal("released", (await Client.ReleaseRwAsync(key, second.Token)).RwReasonOf());
        Assert.Equal("released", (await Client.CheckRwAsync(key, lease.Token)).RwReasonOf());
        Assert.Equal("released", (await Client.ExtendRwAsync(key, lease.Token)).RwReasonOf());
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseRwAsync(key, written.Lease.Token)).Status);
        (await Client.InspectRwAsync(key)).AssertProblem(HttpStatusCode.NotFound, "rwlock_free");
    }

    [TopologyFact]
    public async Task The_last_readers_release_on_one_instance_hands_the_lock_to_a_writer_waiting_on_another_within_milliseconds()
    {
        await using var a = new LockServiceFactory(RedisConnectionString, kestrel: true);
        await using var b = new LockServiceFactory(RedisConnectionString, kestrel: true);
        var (first, second) = (new LockClient(a.CreateClient()), new LockClient(b.CreateClient()));
        var key = Keys.Unique(nameof(The_last_readers_release_on_one_instance_hands_the_lock_to_a_writer_waiting_on_another_within_milliseconds));
        var readers = new[] { await first.AcquireRwOkAsync(key, "mode=read"), await first.AcquireRwOkAsync(key, "mode=read") };
        var writer = second.AcquireRwAsync(key, "mode=write&waitMs=20000");
        await UntilAsync(async () => (await first.InspectRwAsync(key)).Json.GetProperty("writersWaiting").GetInt32() == 1, "the writer waits");

        await first.ReleaseRwAsync(key, readers[0].Token);
        var released = Stopwatch.StartNew();
        await first.ReleaseRwAsync(key, readers[1].Token);
        var granted = await writer.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(HttpStatusCode.Created, granted.Status);
        Assert.True(released.Elapsed < TimeSpan.FromMilliseconds(900), $"the writer got it {released.ElapsedMilliseconds} ms after the last reader left (the re-check is 1 s)");
        Assert.True(granted.Lease.FencingToken > readers[1].FencingToken);
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"not within 10 s: {what}");
            await Task.Delay(10);
        }
    }
}
