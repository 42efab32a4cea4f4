using System.Globalization;
using System.Net;
using LockService.Tests.Api;
using LockService.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace LockService.Tests.Scale;

/// <summary>The operator endpoints on a three-master Redis Cluster: listing walks every master, force-release wakes waiters.</summary>
[StartsRedisServer]
public sealed class ClusterOperatorTests(ClusterOperatorFixture fixture) : IClassFixture<ClusterOperatorFixture>
{
    private ClusterFixture Cluster => fixture.Cluster;

    private LockServiceFactory Factory => fixture.Factory;

    private LockClient Admin => Operators.As(Factory, OperatorFixture.BillingAdmin);

    private LockClient Client => Operators.As(Factory, OperatorFixture.BillingClient);

    [RedisServerFact]
    public async Task Listing_walks_every_master_and_finds_each_held_lock_none_twice_in_a_page()
    {
        var prefix = Keys.Unique("cluster-list") + "-";
        var names = Enumerable.Range(0, 60).Select(i => $"{prefix}{i}").ToArray();
        await Task.WhenAll(names.Select(n => Client.AcquireOkAsync(n, "ttlMs=60000")));
        var masters = names.Select(n => Cluster.OwnerOf(Keys.InRedis(n, "billing").Lock).EndPoint.ToString()).Distinct().Count();

        var pages = await Operators.ListAllAsync(Admin, prefix, limit: 7);

        Assert.Equal(3, masters);
        Assert.All(pages, page => Assert.InRange(page.Count, 0, 7));
        Assert.All(pages, page => Assert.Equal(page.Count, page.Select(l => l.GetProperty("key").GetString()).Distinct().Count()));
        Assert.Equal(names.Order(), pages.SelectMany(p => p).Select(l => l.GetProperty("key").GetString()!).Distinct().Order());
        Assert.DoesNotContain(pages.SelectMany(p => p), l => l.TryGetProperty("token", out _));
    }

    [RedisServerFact]
    public async Task A_lock_held_throughout_a_cluster_listing_appears_while_others_come_and_go() =>
        await Operators.AssertListingFindsHeldLocksDuringChurnAsync(Client, Admin, Keys.Unique("cluster-churn") + "-", held: 30, limit: 2);

    [RedisServerFact]
    public async Task Force_release_on_the_cluster_hands_the_lock_to_a_waiter_and_the_holder_hears_forced()
    {
        var key = Keys.Unique(nameof(Force_release_on_the_cluster_hands_the_lock_to_a_waiter_and_the_holder_hears_forced));
        var holder = await Client.AcquireOkAsync(key, "ttlMs=60000");
        var waiter = Client.AcquireAsync(key, "ttlMs=60000&waitMs=30000");
        await Factory.WaitForWaitersAsync(1);

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}")).Status);

        Assert.Equal(HttpStatusCode.Created, (await waiter.WaitAsync(TimeSpan.FromSeconds(5))).Status);
        Assert.Equal("forced", (await Client.CheckAsync(key, holder.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
        (await Admin.SendAsync(HttpMethod.Get, "/admin/locks?cursor=bm90LWEtY3Vyc29y")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
    }

    [RedisServerFact]
    public async Task A_cursor_after_a_reshard_is_400_and_a_new_listing_works()
    {
        var prefix = Keys.Unique("cluster-reshard") + "-";
        await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Client.AcquireOkAsync($"{prefix}{i}", "ttlMs=60000")));
        var cursor = (await Admin.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}&limit=1")).Json.GetProperty("cursor").GetString();
        Assert.NotNull(cursor);

        // Move one empty slot from one master to another (a reshard of no keys), and let the service see it.
        var (from, to) = (Cluster.Admin.GetServers()[0], Cluster.Admin.GetServers()[1]);
        var slot = await EmptySlotOfAsync(from);
        var target = ((string)(await to.ExecuteAsync("CLUSTER", "MYID"))!).Trim();
        await to.ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", target);
        await from.ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", target);
        await to.ExecuteAsync("CLUSTER", "BUMPEPOCH");
        var service = (ConnectionMultiplexer)Factory.Services.GetRequiredService<IConnectionMultiplexer>();
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                await service.ReconfigureAsync("test: a slot moved");
                var reply = await Admin.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}&limit=1&cursor={cursor}");
                return reply.Status == HttpStatusCode.BadRequest && reply.Code == "invalid_parameter";
            },
            TimeSpan.FromSeconds(20),
            "the old cursor to be refused");

        // Until every node and the service agree on the new slots, a listing may be refused midway: then it starts again.
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                try
                {
                    var pages = await Operators.ListAllAsync(Admin, prefix, limit: 1);
                    return pages.SelectMany(p => p).Select(l => l.GetProperty("key").GetString()).Distinct().Count() == 6;
                }
                catch (Xunit.Sdk.XunitException)
                {
                    await service.ReconfigureAsync("test: a slot moved");
                    return false;
                }
            },
            TimeSpan.FromSeconds(20),
            "a new listing to find all six locks");
    }

    private static async Task<int> EmptySlotOfAsync(IServer server)
    {
        var nodes = (string)(await server.ExecuteAsync("CLUSTER", "NODES"))!;
        var self = nodes.Split('\n').Single(l => l.Contains("myself", StringComparison.Ordinal));
        foreach (var range in self.Split(' ').Skip(8))
        {
            var bounds = range.Split('-');
            var first = int.Parse(bounds[0], CultureInfo.InvariantCulture);
            var last = bounds.Length > 1 ? int.Parse(bounds[1], CultureInfo.InvariantCulture) : first;
            for (var slot = last; slot >= first; slot--)
            {
                if ((long)await server.ExecuteAsync("CLUSTER", "COUNTKEYSINSLOT", slot) == 0)
                {
                    return slot;
                }
            }
        }

        throw new InvalidOperationException("The node has no empty slot.");
    }
}

/// <summary>A three-master cluster and the service over it with operator keys, started once for the class.</summary>
public sealed class ClusterOperatorFixture : IAsyncLifetime
{
    public ClusterFixture Cluster { get; } = new();

    public LockServiceFactory Factory { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Cluster.InitializeAsync();
        if (!RedisServer.Available)
        {
            return;
        }

        // A longer Redis bound than the tests' usual second: three Redis processes and the service share a loaded machine.
        Factory = new LockServiceFactory(Cluster.ConnectionString, Operators.Keys(new Dictionary<string, string?> { ["Redis:TimeoutMs"] = "5000" }));
        var multiplexer = Factory.Services.GetRequiredService<IConnectionMultiplexer>();
        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(multiplexer.GetServers() is { Length: 3 } servers && servers.All(s => s.IsConnected)),
            TimeSpan.FromSeconds(20),
            "the service connected to all three masters");
    }

    public async Task DisposeAsync()
    {
        if (Factory is not null)
        {
            await Factory.DisposeAsync();
        }

        await Cluster.DisposeAsync();
    }
}
