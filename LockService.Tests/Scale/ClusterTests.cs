using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;
using LockService.Tests.Waiting;
using StackExchange.Redis;

namespace LockService.Tests.Scale;

/// <summary>The service unchanged on a real three-master Redis Cluster: every script single-slot, waiting on sharded pub/sub.</summary>
[StartsRedisServer]
public sealed class ClusterTests(ClusterFixture cluster) : WaitingBehaviour, IClassFixture<ClusterFixture>
{
    protected override LockClient Client => cluster.Client;

    protected override string RedisConnectionString => cluster.ConnectionString;

    protected override int CrossInstanceKeys => 3;

    [RedisServerFact]
    public async Task A_full_lock_cycle_works_on_the_cluster()
    {
        var key = Keys.Unique(nameof(A_full_lock_cycle_works_on_the_cluster));

        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000&owner=cluster-test");
        var held = await Client.AcquireAsync(key);
        var inspected = await Client.InspectAsync(key);
        var checkedOut = await Client.CheckAsync(key, lease.Token);
        var extended = await Client.ExtendAsync(key, lease.Token, "ttlMs=60000");
        var released = await Client.ReleaseAsync(key, lease.Token);
        var again = await Client.ReleaseAsync(key, lease.Token);

        Fences.AssertTimeBased(lease.FencingToken);
        Assert.InRange(held.AssertProblem(HttpStatusCode.Conflict, "lock_held").GetProperty("retryAfterMs").GetInt64(), 1, 30_000);
        Assert.Equal(HttpStatusCode.OK, inspected.Status);
        Assert.Equal("cluster-test", inspected.Json.GetProperty("owner").GetString());
        Assert.False(inspected.Json.TryGetProperty("token", out _));
        Assert.Equal(HttpStatusCode.OK, checkedOut.Status);
        Assert.Equal(HttpStatusCode.OK, extended.Status);
        Assert.Equal(60_000, extended.Lease.TtlMs);
        Assert.Equal(lease.FencingToken, extended.Lease.FencingToken);
        Assert.Equal(HttpStatusCode.NoContent, released.Status);
        again.AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await Client.CheckAsync(key, lease.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await Client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [RedisServerFact]
    public async Task Fencing_tokens_strictly_increase_across_release_and_expiry()
    {
        var key = Keys.Unique(nameof(Fencing_tokens_strictly_increase_across_release_and_expiry));
        var fences = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
            fences.Add(lease.FencingToken);
            Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, lease.Token)).Status);
        }

        // One that is left to expire, then the next waits for it.
        fences.Add((await Client.AcquireOkAsync(key, "ttlMs=100")).FencingToken);
        fences.Add((await Client.AcquireOkAsync(key, "ttlMs=30000&waitMs=5000")).FencingToken);

        Fences.AssertStrictlyIncreasing(fences);
    }

    [RedisServerFact]
    public async Task Locks_spread_over_all_three_masters_and_each_keeps_its_keys_on_one_node()
    {
        var prefix = Keys.Unique("spread");
        var names = Enumerable.Range(0, 48).Select(i => $"{prefix}-{i}").ToArray();
        var leases = await Task.WhenAll(names.Select(name => Client.AcquireOkAsync(name, "ttlMs=60000")));
        Assert.All(leases, l => Fences.AssertTimeBased(l.FencingToken));

        var perNode = new Dictionary<string, (HashSet<string> Locks, HashSet<string> Fences)>();
        foreach (var server in cluster.Admin.GetServers().Where(s => !s.IsReplica))
        {
            var locks = new HashSet<string>();
            var fences = new HashSet<string>();
            await foreach (var redisKey in server.KeysAsync(pattern: $"lock:{{{prefix}-*"))
            {
                var text = redisKey.ToString();
                (text.EndsWith(":fence", StringComparison.Ordinal) ? fences : locks).Add(text.Split('{', '}')[1]);
            }

            perNode[server.EndPoint.ToString()!] = (locks, fences);
        }

        // Every master serves some of the locks, so routing by slot works and not just one slot is in use;
        // each lock's hash and last fencing token sit on the same node (one hash tag, one slot).
        Assert.Equal(3, perNode.Count);
        Assert.All(perNode, node => Assert.True(node.Value.Locks.Count > 0, $"{node.Key} holds none of the 48 locks"));
        Assert.All(perNode, node => Assert.Equal(node.Value.Locks, node.Value.Fences));
        Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), perNode.Values.SelectMany(n => n.Locks).Order(StringComparer.Ordinal));
        var slots = await Task.WhenAll(new[] { Keys.InRedis(names[0]).Lock, Keys.InRedis(names[0]).Fence, Keys.InRedis(names[0]).LastLease, Keys.InRedis(names[0]).Leases, Keys.InRedis(names[0]).Channel }
            .Select(async k => (long)await cluster.Admin.GetServers()[0].ExecuteAsync("CLUSTER", "KEYSLOT", k)));
        Assert.Single(slots.Distinct());

        var released = await Task.WhenAll(leases.Select(l => Client.ReleaseAsync(l.Key, l.Token)));
        Assert.All(released, r => Assert.Equal(HttpStatusCode.NoContent, r.Status));
    }

    [RedisServerFact]
    public async Task A_waiter_listens_on_the_locks_own_shard_and_gets_the_lock_promptly_after_the_release()
    {
        await using var service = new LockServiceFactory(cluster.ConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_waiter_listens_on_the_locks_own_shard_and_gets_the_lock_promptly_after_the_release));
        var channel = Keys.InRedis(key).Channel;
        var owner = cluster.OwnerOf(Keys.InRedis(key).Lock);
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");
        var waiter = client.AcquireAsync(key, "waitMs=20000");
        await service.WaitForWaitersAsync(1);

        // SSUBSCRIBE on the node that owns the lock's slot, and no plain SUBSCRIBE anywhere.
        await RedisServer.WaitUntilAsync(async () => await ShardSubscribersAsync(owner, channel) == 1, TimeSpan.FromSeconds(5), "the waiter's SSUBSCRIBE on the owning node");
        foreach (var server in cluster.Admin.GetServers())
        {
            Assert.Equal(0, await SubscribersAsync(server, "NUMSUB", channel));
        }

        await client.ReleaseAsync(key, holder.Token);
        var released = Stopwatch.StartNew();
        var reply = await waiter;

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.True(reply.Lease.FencingToken > holder.FencingToken, "fencing tokens must increase");

        // The re-check is a minute away and the TTL 30 s: within 5 s, only the sharded message woke it. (Not under
        // a second: a loaded machine has taken 2 s for a hand-off.)
        Assert.True(released.Elapsed < TimeSpan.FromSeconds(5), $"hand-off took {released.ElapsedMilliseconds} ms");

        // The last waiter gone, the subscription goes too.
        await RedisServer.WaitUntilAsync(async () => await ShardSubscribersAsync(owner, channel) == 0, TimeSpan.FromSeconds(5), "the SUNSUBSCRIBE after the last waiter");
    }

    [RedisServerFact]
    public async Task An_idempotent_retry_while_held_returns_the_same_lease_and_after_release_a_new_one()
    {
        var key = Keys.Unique(nameof(An_idempotent_retry_while_held_returns_the_same_lease_and_after_release_a_new_one));
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "retry-" + Guid.NewGuid().ToString("N") };

        var first = await Client.SendAsync(HttpMethod.Post, $"/locks/{key}?ttlMs=30000", headers: headers);
        var retry = await Client.SendAsync(HttpMethod.Post, $"/locks/{key}?ttlMs=5000", headers: headers);
        var stranger = await Client.AcquireAsync(key);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, first.Lease.Token)).Status);
        var afterRelease = await Client.SendAsync(HttpMethod.Post, $"/locks/{key}?ttlMs=30000", headers: headers);

        Assert.Equal(HttpStatusCode.Created, first.Status);
        Assert.Equal(HttpStatusCode.Created, retry.Status);
        Assert.Equal((first.Lease.Token, first.Lease.FencingToken), (retry.Lease.Token, retry.Lease.FencingToken));
        Assert.InRange(retry.Lease.TtlMs, 1, 30_000);
        stranger.AssertProblem(HttpStatusCode.Conflict, "lock_held");
        Assert.Equal(HttpStatusCode.Created, afterRelease.Status);
        Assert.NotEqual(first.Lease.Token, afterRelease.Lease.Token);
        Assert.True(afterRelease.Lease.FencingToken > first.Lease.FencingToken, "fencing tokens must increase");
    }

    private static Task<long> ShardSubscribersAsync(IServer server, string channel) => SubscribersAsync(server, "SHARDNUMSUB", channel);

    // PUBSUB NUMSUB / SHARDNUMSUB answer [channel, count].
    private static async Task<long> SubscribersAsync(IServer server, string kind, string channel)
    {
        var reply = (RedisResult[])(await server.ExecuteAsync("PUBSUB", kind, channel))!;
        return (long)reply[1];
    }
}
