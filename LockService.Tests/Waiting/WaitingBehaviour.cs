using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Waiting;

/// <summary>
/// Waiting behaviour every Redis topology must show: one copy of the tests, run by each topology's test class
/// (<see cref="WaitingTests"/> on one Redis, <see cref="Scale.ClusterTests"/> on a Redis Cluster).
/// </summary>
public abstract class WaitingBehaviour : TopologyBehaviour
{
    /// <summary>Keys the cross-instance test hands over; more than one on a cluster, so more than one master is shown.</summary>
    protected virtual int CrossInstanceKeys => 1;

    [TopologyFact]
    public async Task Expiry_wakes_a_waiter_at_about_the_ttl_without_any_release()
    {
        await using var service = new LockServiceFactory(RedisConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(Expiry_wakes_a_waiter_at_about_the_ttl_without_any_release));
        var holder = await client.AcquireOkAsync(key, "ttlMs=400");
        var started = Stopwatch.StartNew();

        var reply = await client.AcquireAsync(key, "waitMs=20000");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.True(reply.Lease.FencingToken > holder.FencingToken, "fencing tokens must increase");

        // Not before the TTL; and within 5 s, while the re-check is a minute away and waitMs 20 s: the expiry timer
        // woke it. 5 s, not about the 400 ms TTL: a loaded machine has taken 2 s for a hand-off.
        Assert.InRange(started.ElapsedMilliseconds, 250, 5_000);
    }

    [TopologyFact]
    public async Task A_waiter_on_another_instance_is_woken_by_a_release_through_this_one()
    {
        await using var a = new LockServiceFactory(RedisConnectionString, LockServiceFactory.WithoutRecheck(), kestrel: true);
        await using var b = new LockServiceFactory(RedisConnectionString, LockServiceFactory.WithoutRecheck(), kestrel: true);
        var clientA = new LockClient(a.CreateClient());
        var clientB = new LockClient(b.CreateClient());
        Assert.NotEqual(a.BaseAddress, b.BaseAddress);

        foreach (var i in Enumerable.Range(0, CrossInstanceKeys))
        {
            var key = Keys.Unique($"{nameof(A_waiter_on_another_instance_is_woken_by_a_release_through_this_one)}-{i}");
            var holder = await clientA.AcquireOkAsync(key, "ttlMs=30000");
            var waiter = clientB.AcquireAsync(key, "waitMs=20000");
            await b.WaitForWaitersAsync(1);

            Assert.Equal(HttpStatusCode.NoContent, (await clientA.ReleaseAsync(key, holder.Token)).Status);
            var released = Stopwatch.StartNew();
            var reply = await waiter;

            Assert.Equal(HttpStatusCode.Created, reply.Status);
            Assert.True(reply.Lease.FencingToken > holder.FencingToken, "fencing tokens must increase");

            // The re-check is a minute away and the TTL 30 s: within 5 s, only the release's message woke it. (Not
            // under a second: a loaded machine has taken 2 s for this hand-off.)
            Assert.True(released.Elapsed < TimeSpan.FromSeconds(5), $"cross-instance hand-off took {released.ElapsedMilliseconds} ms");
            await b.WaitForWaitersAsync(0);
        }
    }

    [TopologyTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_waiter_gets_the_lock_when_a_shortened_ttl_lapses_not_at_the_old_expiry(bool acrossInstances)
    {
        // A re-check period far beyond the test: only the extend's announcement can wake the waiter in time.
        var settings = LockServiceFactory.WithoutRecheck();
        await using var a = new LockServiceFactory(RedisConnectionString, settings, kestrel: acrossInstances);
        await using var b = acrossInstances ? new LockServiceFactory(RedisConnectionString, settings, kestrel: true) : null;
        var holderClient = new LockClient(a.CreateClient());
        var waiterFactory = b ?? a;
        var waiterClient = new LockClient(waiterFactory.CreateClient());
        var key = Keys.Unique(nameof(A_waiter_gets_the_lock_when_a_shortened_ttl_lapses_not_at_the_old_expiry));
        var holder = await holderClient.AcquireOkAsync(key, "ttlMs=30000");
        var waiter = waiterClient.AcquireAsync(key, "waitMs=20000");
        await waiterFactory.WaitForWaitersAsync(1);

        var shortened = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.OK, (await holderClient.ExtendAsync(key, holder.Token, "ttlMs=150")).Status);
        var reply = await waiter;

        // About 150 ms; the old expiry was 30 s away and the re-check a minute. 5 s leaves a loaded machine slack.
        Handoff.AssertPrompt(reply, holder, shortened, TimeSpan.FromSeconds(5), "the TTL was cut to 150 ms");
    }

    [TopologyFact]
    public async Task A_lock_deleted_behind_the_service_s_back_reaches_its_waiter_within_the_recheck_period()
    {
        await using var service = new LockServiceFactory(RedisConnectionString, new Dictionary<string, string?> { ["Locks:RecheckMs"] = "300" });
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_lock_deleted_behind_the_service_s_back_reaches_its_waiter_within_the_recheck_period));
        await client.AcquireOkAsync(key, "ttlMs=30000");
        var waiter = client.AcquireAsync(key, "waitMs=20000");
        await service.WaitForWaitersAsync(1);

        // A raw DEL publishes nothing: only the head's own re-check can find the lock free.
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(RedisConnectionString);
        Assert.True(await redis.GetDatabase().KeyDeleteAsync(LockService.Core.Locks.LockKeys.For("lock:", LockService.Core.Leases.LeaseName.Of(key)).Lock));
        var deleted = Stopwatch.StartNew();
        var reply = await waiter;

        Assert.Equal(HttpStatusCode.Created, reply.Status);

        // About 300 ms; without the re-check only waitMs (20 s) or the TTL (30 s) would end the wait. 5 s leaves a
        // loaded machine slack.
        Assert.True(deleted.Elapsed < TimeSpan.FromSeconds(5), $"found free {deleted.ElapsedMilliseconds} ms after the DEL, with Locks:RecheckMs at 300");
    }
}
