using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using LockService.Tests.Infrastructure;
using LockService.Tests.Semaphores;

namespace LockService.Tests.Scale;

/// <summary>Semaphores unchanged on a real three-master Redis Cluster: every script single-slot, notices on sharded pub/sub.</summary>
[StartsRedisServer]
public sealed class ClusterSemaphoreTests(ClusterFixture cluster) : SemaphoreBehaviour, IClassFixture<ClusterFixture>
{
    protected override LockClient Client => cluster.Client;

    protected override string RedisConnectionString => cluster.ConnectionString;

    [RedisServerFact]
    public async Task Every_key_and_the_channel_of_a_semaphore_hash_to_one_slot()
    {
        var key = Keys.Unique(nameof(Every_key_and_the_channel_of_a_semaphore_hash_to_one_slot));
        await Client.AcquirePermitOkAsync(key, "limit=2&owner=cluster");
        var keys = SemaphoreKeys.For("sem:", LeaseName.Of(key));
        var server = cluster.Admin.GetServers()[0];

        var slots = await Task.WhenAll(new[] { keys.Semaphore, keys.Permits, keys.Slots, keys.Fence, keys.Leases, keys.Channel }
            .Select(async k => (long)await server.ExecuteAsync("CLUSTER", "KEYSLOT", k)));

        Assert.Single(slots.Distinct());
        Assert.True(await cluster.OwnerOf(keys.Semaphore).ExecuteAsync("EXISTS", keys.Permits) is { } exists && (long)exists == 1);
    }
}
