using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using StackExchange.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// One kind of lease as a .NET program drives it: the engine's operations with the kind's store, under one name, so that
/// a test reads as "acquire, release, watch" whatever the kind. Owns the engine when it made it.
/// </summary>
public class KindUnderTest<TRequest, TLease, TInfo, TBusy>(LeaseEngine engine, LeaseStore<TRequest, TLease, TInfo, TBusy> store, bool ownsEngine) : IDisposable
    where TRequest : ILeaseRequest<TRequest>
    where TLease : class, IKeptLease
    where TInfo : class, ILeaseInfo
{
    public LeaseEngine Engine => engine;

    public LeaseStore<TRequest, TLease, TInfo, TBusy> Store => store;

    public int WaitingCount => engine.WaitingOf(store.Kind);

    public int WatchingCount => engine.WatchingCount;

    public Task<AcquireResult<TLease, TBusy>> AcquireAsync(LeaseName name, TRequest request, CancellationToken cancellationToken = default) =>
        engine.AcquireAsync(store, name, request, cancellationToken);

    public Task<ReleaseResult> ReleaseAsync(LeaseName name, string token) => store.ReleaseAsync(name, token);

    public Task<ExtendResult<TLease>> ExtendAsync(LeaseName name, string token, ExtendRequest request) => store.ExtendAsync(name, token, request);

    public Task<CheckResult<TInfo>> CheckAsync(LeaseName name, string token) => store.CheckAsync(name, token);

    public Task<CheckResult<TInfo>> WatchAsync(LeaseName name, string token, long waitMs, CancellationToken cancellationToken = default) =>
        engine.WatchAsync(store, name, token, waitMs, cancellationToken);

    public Task<LeaseEnd?> KeepAsync(LeaseName name, TLease lease, Func<TLease, ValueTask> renewed, CancellationToken stop) =>
        engine.KeepAsync(store, name, lease, renewed, stop);

    public Task PingAsync() => engine.PingAsync();

    public void Dispose()
    {
        if (ownsEngine)
        {
            engine.Dispose();
        }
    }
}

/// <summary>The lock kind under test.</summary>
public sealed class TestLocks(LeaseEngine leases, LockStore store, bool ownsEngine = false)
    : KindUnderTest<AcquireRequest, LockLease, LockInfo, NoDetail>(leases, store, ownsEngine)
{
    /// <summary>A new engine (another instance of the service, as far as waiting goes) with the lock kind on it.</summary>
    public static TestLocks Create(IConnectionMultiplexer redis, LeaseOptions options, RedisOptions redisOptions, TimeProvider? clock = null, WaitBounds? bounds = null)
    {
        var engine = new LeaseEngine(redis, options, redisOptions, clock, bounds);
        return new TestLocks(engine, new LockStore(engine), ownsEngine: true);
    }

    public Task<LockInfo?> InspectAsync(LeaseName name) => store.InspectAsync(name);

    public Task<ForceReleaseResult> ForceReleaseAsync(LeaseName name) => store.ForceReleaseAsync(name);

    public Task<LeasePage<LockInfo>> ListAsync(string tenant, string prefix, int limit, string? cursor) => Engine.ListAsync(store, tenant, prefix, limit, cursor);
}

/// <summary>The semaphore kind under test: acquires take the caller's limit apart from the terms.</summary>
public sealed class TestSemaphores(LeaseEngine leases, SemaphoreStore store, bool ownsEngine = false)
    : KindUnderTest<PermitRequest, PermitLease, PermitInfo, SemaphoreBusy>(leases, store, ownsEngine)
{
    /// <summary>A new engine (another instance of the service, as far as waiting goes) with the semaphore kind on it.</summary>
    public static TestSemaphores Create(
        IConnectionMultiplexer redis, SemaphoreOptions options, LeaseOptions limits, RedisOptions redisOptions, TimeProvider? clock = null, WaitBounds? bounds = null)
    {
        var engine = new LeaseEngine(redis, limits, redisOptions, clock, bounds);
        return new TestSemaphores(engine, new SemaphoreStore(engine, options), ownsEngine: true);
    }

    public Task<AcquireResult<PermitLease, SemaphoreBusy>> AcquireAsync(LeaseName name, int limit, AcquireRequest request, CancellationToken cancellationToken = default) =>
        AcquireAsync(name, new PermitRequest(request, limit), cancellationToken);

    public Task<SemaphoreInfo?> InspectAsync(LeaseName name) => store.InspectAsync(name);

    public Task<PermitForceReleaseResult> ForceReleaseAsync(LeaseName name, int slot) => store.ForceReleaseAsync(name, slot);

    public Task<LeasePage<SemaphoreInfo>> ListAsync(string tenant, string prefix, int limit, string? cursor, CancellationToken cancellationToken = default) =>
        Engine.ListAsync(store, tenant, prefix, limit, cursor, cancellationToken);
}
