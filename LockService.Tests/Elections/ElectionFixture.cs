using System.Runtime.CompilerServices;
using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Elections;

/// <summary>An election store over the shared Redis, as one instance of the service has it.</summary>
public sealed class ElectionFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public ElectionStore Store { get; private set; } = null!;

    public IDatabase Db => Redis.Redis.GetDatabase();

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Store = NewStore(Redis.Redis);
    }

    /// <summary>Another instance's election store (its own engine) over <paramref name="multiplexer"/>.</summary>
    public ElectionStore NewStore(IConnectionMultiplexer multiplexer) =>
        ElectionTesting.NewStore(multiplexer, new RedisOptions { ConnectionString = Redis.ConnectionString });

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>An election name no other test uses.</summary>
    public static LeaseName NewName(string test) => LeaseName.Of(Keys.Unique(test));
}

/// <summary>Campaigns through the engine a store was made with, as the service's routes run them.</summary>
internal static class ElectionTesting
{
    private static readonly ConditionalWeakTable<ElectionStore, LeaseEngine> Engines = [];

    public static ElectionStore NewStore(IConnectionMultiplexer multiplexer, RedisOptions redis, ElectionOptions? options = null, LeaseOptions? limits = null)
    {
        var engine = new LeaseEngine(multiplexer, limits ?? new LeaseOptions(), redis);
        var store = new ElectionStore(engine, options ?? new ElectionOptions());
        Engines.Add(store, engine);
        return store;
    }

    public static CampaignRequest Campaign(long ttlMs, string value = "", string? idempotencyKey = null, long waitMs = 0) =>
        new(new AcquireRequest(ttlMs, waitMs, IdempotencyKey: idempotencyKey), value);

    public static Task<AcquireResult<ElectionLease, ElectionLeader?>> CampaignAsync(this ElectionStore store, LeaseName name, CampaignRequest request) =>
        Engines.TryGetValue(store, out var engine) ? engine.AcquireAsync(store, name, request) : throw new InvalidOperationException("a store not made by ElectionTesting");

    public static Task<ElectionLeader?> LeaderAsync(this ElectionStore store, LeaseName name) => store.InspectAsync(name);

    public static Task<ReleaseResult> ResignAsync(this ElectionStore store, LeaseName name, string token) => store.ReleaseAsync(name, token);
}
