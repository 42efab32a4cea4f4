using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Waiting;

/// <summary>
/// Waiting behaviour every Redis topology must show: one copy of the tests, run by each topology's test class
/// (<see cref="WaitingTests"/> on one Redis, <see cref="Scale.ClusterTests"/> on a Redis Cluster).
/// </summary>
public abstract class WaitingBehaviour
{
    protected abstract LockClient Client { get; }

    /// <summary>The Redis connection string further service instances are started with.</summary>
    protected abstract string RedisConnectionString { get; }

    /// <summary>Keys the cross-instance test hands over; more than one on a cluster, so more than one master is shown.</summary>
    protected virtual int CrossInstanceKeys => 1;

    [Fact]
    public async Task Expiry_wakes_a_waiter_at_about_the_ttl_without_any_release()
    {
        var key = Keys.Unique(nameof(Expiry_wakes_a_waiter_at_about_the_ttl_without_any_release));
        await Client.AcquireOkAsync(key, "ttlMs=400");
        var started = Stopwatch.StartNew();

        var reply = await Client.AcquireAsync(key, "waitMs=10000");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.Equal(2, reply.Lease.FencingToken);

        // Well before the 5 s safety re-check: the expiry timer woke it.
        Assert.InRange(started.ElapsedMilliseconds, 250, 2_000);
    }

    [Fact]
    public async Task A_waiter_on_another_instance_is_woken_by_a_release_through_this_one()
    {
        await using var a = new LockServiceFactory(RedisConnectionString, kestrel: true);
        await using var b = new LockServiceFactory(RedisConnectionString, kestrel: true);
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
            Assert.Equal(holder.FencingToken + 1, reply.Lease.FencingToken);
            Assert.True(released.Elapsed < TimeSpan.FromMilliseconds(900), $"cross-instance hand-off took {released.ElapsedMilliseconds} ms");
            await b.WaitForWaitersAsync(0);
        }
    }
}
