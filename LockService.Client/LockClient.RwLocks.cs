using System.Globalization;

namespace LockService.Client;

/// <summary>Read/write locks (<c>/rwlocks</c>): the lock calls with a mode, through the same code as locks and permits.</summary>
public sealed partial class LockClient
{
    /// <summary>
    /// Acquires a <paramref name="mode"/> lease of the read/write lock <paramref name="key"/>, waiting in the server up to
    /// <paramref name="wait"/>; null when a writer holds it (for a read: or one waits; for a write: anyone holds it) and
    /// the wait ran out.
    /// </summary>
    public async Task<RwLease?> TryAcquireRwLockAsync(
        string key, RwLockMode mode, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        (RwLease?)(await AcquireRwLockOnceAsync(key, mode, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken)).Lease;

    /// <summary>
    /// Acquires a <paramref name="mode"/> lease of <paramref name="key"/> and holds it as a lock is held (renewed,
    /// watched, released when disposed). Throws <see cref="RwLockHeldException"/> when the wait ran out. There is no
    /// upgrade: a reader that asks for a write lease waits for every read lease, its own included.
    /// </summary>
    public Task<RwLockHandle> AcquireRwLockAsync(
        string key, RwLockMode mode, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        HoldAsync<RwLockHandle>(
            TimeProvider.System.GetTimestamp(),
            AcquireRwLockOnceAsync(key, mode, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken),
            wait,
            result => new RwLockHeldException(key, mode, result.RetryAfter));

    /// <summary>Holds a read/write lease obtained otherwise (by <see cref="TryAcquireRwLockAsync"/>), as <see cref="Hold"/> holds a lease.</summary>
    public RwLockHandle HoldRwLock(RwLease lease, long grantedAt) => (RwLockHandle)Hold(lease, grantedAt);

    /// <summary>One acquire request for a read/write lease: the <see cref="RwLease"/>, or when the lease in the way expires.</summary>
    public Task<AcquireResult> AcquireRwLockOnceAsync(
        string key, RwLockMode mode, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        AcquireOnceAsync(LeaseKind.RwLock, key, ("mode", ModeName(mode)), ttl, wait, owner, maxHold, idempotencyKey, cancellationToken);

    /// <summary>Releases the read/write lease held by <paramref name="token"/>; not released (with the reason) when it did not hold one.</summary>
    public Task<ReleaseResult> ReleaseRwLockAsync(string key, string token, CancellationToken cancellationToken = default) =>
        ReleaseAsync(LeaseKind.RwLock, key, token, cancellationToken);

    /// <summary>Sets the read/write lease's remaining TTL to <paramref name="ttl"/> (default: the TTL it was acquired with); the lease is an <see cref="RwLease"/>.</summary>
    public Task<ExtendResult> ExtendRwLockAsync(string key, string token, TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        ExtendAsync(LeaseKind.RwLock, key, token, ttl, cancellationToken);

    /// <summary>The mode held, the holders and the writers waiting of <paramref name="key"/>; null when nobody holds it.</summary>
    public Task<RwLockInfo?> InspectRwLockAsync(string key, CancellationToken cancellationToken = default) =>
        InspectAsync<RwLockInfo>(LeaseKind.RwLock, key, cancellationToken);

    /// <summary>Whether <paramref name="token"/> still holds a lease of <paramref name="key"/> (its info is an <see cref="RwLeaseInfo"/>).</summary>
    public Task<LeaseStatus> CheckRwLockAsync(string key, string token, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.RwLock, key, token, TimeSpan.Zero, cancellationToken);

    /// <summary>Watches a read/write lease as <see cref="WatchAsync(string, string, TimeSpan, CancellationToken)"/> watches a lock.</summary>
    public Task<LeaseStatus> WatchRwLockAsync(string key, string token, TimeSpan wait, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.RwLock, key, token, wait, cancellationToken);

    /// <summary>
    /// Force-releases every lease of <paramref name="key"/>, or with <paramref name="fencingToken"/> that lease only
    /// (operator endpoint); false when there was none.
    /// </summary>
    public Task<bool> ForceReleaseRwLockAsync(string key, long? fencingToken = null, CancellationToken cancellationToken = default) =>
        ForceReleaseAsync(
            LeaseKind.RwLock,
            "admin/rwlocks/" + Uri.EscapeDataString(key) + Query(("fencingToken", fencingToken?.ToString(CultureInfo.InvariantCulture))),
            cancellationToken);

    /// <summary>One page of the held read/write locks whose keys start with <paramref name="prefix"/>, each as inspection shows it (operator endpoint).</summary>
    public Task<RwLockPage> ListRwLocksAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        ListPageAsync("admin/rwlocks", ClientJson.Default.RwLockPage, prefix, limit, cursor, cancellationToken);

    /// <summary>Every held read/write lock whose key starts with <paramref name="prefix"/>, each key once, as <see cref="ListAllAsync"/> walks locks.</summary>
    public IAsyncEnumerable<RwLockInfo> ListAllRwLocksAsync(string? prefix = null, int? pageSize = null, CancellationToken cancellationToken = default) =>
        FollowCursorsAsync(
            async (cursor, cancellation) =>
            {
                var page = await ListRwLocksAsync(prefix, pageSize, cursor, cancellation);
                return (page.RwLocks, page.Cursor);
            },
            rwlock => rwlock.Key,
            cancellationToken);

    /// <summary>A mode's name on the wire.</summary>
    internal static string ModeName(RwLockMode mode) => mode == RwLockMode.Write ? "write" : "read";
}
