using LockService.Core.Leases;
using LockService.Core.RwLocks;
using LockService.Tests.Infrastructure;
using LockService.Tests.RwLocks;

namespace LockService.Tests.Scale;

/// <summary>Read/write locks unchanged on a real three-master Redis Cluster: every script single-slot, notices on sharded pub/sub.</summary>
[StartsRedisServer]
public sealed class ClusterRwLockTests(ClusterFixture cluster) : RwLockBehaviour, IClassFixture<ClusterFixture>
{
    protected override LockClient Client => cluster.Client;

    protected override string RedisConnectionString => cluster.ConnectionString;

    [RedisServerFact]
    public async Task Every_key_and_the_channel_of_a_read_write_lock_hash_to_one_slot()
    {
        var key = Keys.Unique(nameof(Every_key_and_the_channel_of_a_read_write_lock_hash_to_one_slot));
        await Client.AcquireRwOkAsync(key, "mode=read&owner=cluster");
        var writer = Client.AcquireRwAsync(key, "mode=write&waitMs=3000");
        var keys = RwLockKeys.For("rw:", LeaseName.Of(key));
        var server = cluster.Admin.GetServers()[0];

        var slots = await Task.WhenAll(new[] { keys.Held, keys.Holders, keys.Fence, keys.LeaseRecords, keys.Writers, keys.Channel }
            .Select(async k => (long)await server.ExecuteAsync("CLUSTER", "KEYSLOT", k)));

        Assert.Single(slots.Distinct());
        Assert.True(await cluster.OwnerOf(keys.Held).ExecuteAsync("EXISTS", keys.Holders) is { } exists && (long)exists == 1);
        Assert.Equal(System.Net.HttpStatusCode.Conflict, (await writer).Status);
    }
}
