namespace LockService.Core.Locks;

/// <summary>A held lock as its owner sees it.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="Token">The secret that proves ownership.</param>
/// <param name="FencingToken">Strictly increasing per key over every acquisition.</param>
/// <param name="TtlMs">The TTL set by this acquire or extend.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="AcquiredAt">When the lock was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap: no extend takes the expiry past <paramref name="AcquiredAt"/> plus this; null without a cap.</param>
public sealed record LockLease(
    string Key, string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, string? Owner, DateTimeOffset AcquiredAt, long? MaxHoldMs) : IKeptLease;

/// <summary>A held lock as anyone may see it: never the token.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="FencingToken">The holder's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lock was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record LockInfo(string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs);

/// <summary>Why a token no longer holds its lock. The values are the lease records' states in Redis.</summary>
public enum LeaseEnd
{
    /// <summary>Released with its token.</summary>
    Released = 1,

    /// <summary>An operator force-released it.</summary>
    Forced = 2,

    /// <summary>Its TTL or its hold cap ran out.</summary>
    Expired = 3,

    /// <summary>The service does not remember this token: it never held this lock, or its lease ended long ago.</summary>
    Unknown = 4,

    /// <summary>A kept lease (<see cref="LockEngine.KeepAsync"/>) could not be renewed before its TTL ran out: Redis was unreachable. Never a lease record's state.</summary>
    Unavailable = 5,
}

/// <summary>How a release ended.</summary>
/// <param name="Released">True when this token held the lock and it is released now.</param>
/// <param name="Ended">When not released: why this token no longer holds it.</param>
/// <param name="HeldMs">When released: how long the lease was held.</param>
public readonly record struct ReleaseResult(bool Released, LeaseEnd? Ended, long HeldMs);

/// <summary>What keeping a lease of any kind alive needs of it (<see cref="LockEngine.KeepAsync"/>).</summary>
public interface IKeptLease
{
    /// <summary>The token that holds it.</summary>
    string Token { get; }

    /// <summary>Its TTL as granted.</summary>
    long TtlMs { get; }
}

/// <summary>What an extend, check or watch of a token found, for any kind of lease.</summary>
/// <typeparam name="T">What is known of the lease while the token holds it.</typeparam>
public interface ILeaseResult<out T>
    where T : class
{
    /// <summary>The lease (or what is known of it) while the token holds it, else null.</summary>
    T? Held { get; }

    /// <summary>When not held: why.</summary>
    LeaseEnd? Ended { get; }
}

/// <summary>What a check or watch of a token found, for any kind of lease.</summary>
/// <typeparam name="T">What is known of the lease while the token holds it.</typeparam>
public interface IWatchResult<out T> : ILeaseResult<T>
    where T : class
{
    /// <summary>When a watch was refused, which bound had no room: the instance's (<see cref="LockOptions.MaxWatchers"/>) or the tenant's share of it.</summary>
    NoRoom NoRoomToWatch { get; }
}

/// <summary>How an extend ended: the new lease, or why the token no longer holds the lock.</summary>
/// <param name="Lease">The lease with its new TTL, or null when the token no longer holds the lock.</param>
/// <param name="Ended">When not extended: why.</param>
public readonly record struct ExtendResult(LockLease? Lease, LeaseEnd? Ended) : ILeaseResult<LockLease>
{
    LockLease? ILeaseResult<LockLease>.Held => Lease;
}

/// <summary>How a check or a watch ended.</summary>
/// <param name="Info">The lock while this token holds it, else null.</param>
/// <param name="Ended">When not held: why.</param>
/// <param name="NoRoomToWatch">When a watch was refused, which bound had no room (<see cref="LockOptions.MaxWatchers"/>, or the tenant's share of it).</param>
public readonly record struct CheckResult(LockInfo? Info, LeaseEnd? Ended, NoRoom NoRoomToWatch = NoRoom.None) : IWatchResult<LockInfo>
{
    LockInfo? ILeaseResult<LockInfo>.Held => Info;
}

/// <summary>What a force-release released.</summary>
/// <param name="Released">True when a lock was held and is released now.</param>
/// <param name="FencingToken">The released holder's fencing token.</param>
/// <param name="Owner">The released holder's owner text, or null.</param>
/// <param name="HeldMs">How long it was held.</param>
public readonly record struct ForceReleaseResult(bool Released, long FencingToken, string? Owner, long HeldMs);

/// <summary>What an acquire asks for.</summary>
/// <param name="TtlMs">How long the lock lives unless released or extended.</param>
/// <param name="WaitMs">How long to wait in the server for a held lock; 0 answers at once.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
/// <param name="IdempotencyKey">A retry of the same acquire while its lock is held gets the same lease back.</param>
/// <param name="MaxHoldMs">The longest the lock may be held in total (<see cref="TtlMs"/> .. <see cref="LockOptions.MaxHoldMs"/>); null: <see cref="LockOptions.DefaultMaxHoldMs"/>.</param>
public readonly record struct AcquireRequest(long TtlMs, long WaitMs = 0, string? Owner = null, string? IdempotencyKey = null, long? MaxHoldMs = null)
{
    /// <summary>What breaks <see cref="LockRules"/> under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LockOptions options)
    {
        RequestErrors? errors = null;
        LockRules.CheckTtl(TtlMs, options, ref errors);
        LockRules.CheckWait(WaitMs, options, ref errors);
        if (Owner is not null)
        {
            LockRules.CheckOwner(Owner, ref errors);
        }

        if (IdempotencyKey is not null)
        {
            LockRules.CheckIdempotencyKey(IdempotencyKey, ref errors);
        }

        if (MaxHoldMs is long maxHold)
        {
            LockRules.CheckMaxHold(maxHold, TtlMs, options, ref errors);
        }

        return errors;
    }

    /// <summary>
    /// The request with the default hold cap applied: <see cref="LockOptions.DefaultMaxHoldMs"/> when none was asked
    /// for (0 = none), the TTL cut to it when it is shorter.
    /// </summary>
    public AcquireRequest WithDefaults(LockOptions options) =>
        MaxHoldMs is null && options.DefaultMaxHoldMs > 0
            ? this with { MaxHoldMs = options.DefaultMaxHoldMs, TtlMs = Math.Min(TtlMs, options.DefaultMaxHoldMs) }
            : this;
}

/// <summary>What an extend asks for.</summary>
/// <param name="TtlMs">The new remaining TTL; null keeps the TTL the lock was acquired with.</param>
public readonly record struct ExtendRequest(long? TtlMs = null)
{
    /// <summary>What breaks <see cref="LockRules"/> under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LockOptions options)
    {
        RequestErrors? errors = null;
        if (TtlMs is long ttl)
        {
            LockRules.CheckTtl(ttl, options, ref errors);
        }

        return errors;
    }
}

/// <summary>How an acquire ended.</summary>
public enum AcquireStatus
{
    /// <summary>The caller holds the lock now.</summary>
    Acquired,

    /// <summary>Someone else holds it and the wait (if any) ran out.</summary>
    Held,

    /// <summary>This instance already has as many waiters as it allows.</summary>
    TooManyWaiters,

    /// <summary>The caller's tenant already has its share of this instance's waiters (<see cref="LockOptions.TenantShare"/>).</summary>
    TenantTooManyWaiters,
}

/// <summary>
/// The outcome of an acquire of a lease (a lock's, a semaphore's permit). When acquired it is also the lease's handle:
/// disposing it releases the lease, so .NET callers can write <c>await using var l = await engine.AcquireAsync(...)</c>.
/// </summary>
/// <typeparam name="TLease">The lease's type.</typeparam>
public abstract class AcquireOutcome<TLease> : IAsyncDisposable
    where TLease : class
{
    private int _released;

    private protected AcquireOutcome(AcquireStatus status, TLease? lease, long retryAfterMs, bool replayed, bool waited)
    {
        Status = status;
        Lease = lease;
        RetryAfterMs = retryAfterMs;
        Replayed = replayed;
        Waited = waited;
    }

    /// <summary>How the acquire ended.</summary>
    public AcquireStatus Status { get; }

    /// <summary>True when the caller holds the lease.</summary>
    public bool Acquired => Status == AcquireStatus.Acquired;

    /// <summary>The lease when acquired, else null.</summary>
    public TLease? Lease { get; }

    /// <summary>When not acquired: when the lease in the way runs out, in ms from now, a hint for when to try again.</summary>
    public long RetryAfterMs { get; }

    /// <summary>True when an Idempotency-Key matched and the original lease was returned again.</summary>
    public bool Replayed { get; }

    /// <summary>True when the request waited in the server (its first attempt found it taken).</summary>
    public bool Waited { get; }

    /// <summary>When the request found no room to wait: which bound had none, the instance's or its tenant's share of it.</summary>
    public NoRoom WaitRefused => Status switch
    {
        AcquireStatus.TooManyWaiters => NoRoom.Instance,
        AcquireStatus.TenantTooManyWaiters => NoRoom.Tenant,
        _ => NoRoom.None,
    };

    /// <summary>Releases the lease if this result acquired it and it was not released yet.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Lease is not null && Interlocked.Exchange(ref _released, 1) == 0)
        {
            await ReleaseAsync(Lease).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A lease obtained just as its caller went away is released at once, and the cancellation thrown: no lease is left to
    /// a client that is gone. A replay is not released: the lease belongs to the request that obtained it (with hedged
    /// retries, the twin whose response may have reached the client already), and only that one releases it.
    /// </summary>
    internal async ValueTask ReleaseIfCancelledAsync(CancellationToken cancellationToken)
    {
        if (Acquired && cancellationToken.IsCancellationRequested)
        {
            if (!Replayed)
            {
                await DisposeAsync().ConfigureAwait(false);
            }

            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>The status of an acquire that found no room to wait.</summary>
    private protected static AcquireStatus StatusOf(NoRoom refused) =>
        refused == NoRoom.Tenant ? AcquireStatus.TenantTooManyWaiters : AcquireStatus.TooManyWaiters;

    /// <summary>Releases the acquired lease through the engine that granted it.</summary>
    private protected abstract Task ReleaseAsync(TLease lease);
}

/// <summary>
/// The outcome of a lock's acquire. When acquired it is also the lock's handle: disposing it releases the lock,
/// so .NET callers can write <c>await using var l = await engine.AcquireAsync(...)</c>.
/// </summary>
public sealed class AcquireResult : AcquireOutcome<LockLease>
{
    private readonly LockEngine? _engine;
    private readonly LockName _name;

    private AcquireResult(AcquireStatus status, LockLease? lease, long retryAfterMs, bool replayed, bool waited, LockEngine? engine, LockName name)
        : base(status, lease, retryAfterMs, replayed, waited)
    {
        _name = name;
        _engine = engine;
    }

    /// <summary>The caller holds the lock now; disposing the result releases it through <paramref name="engine"/>.</summary>
    internal static AcquireResult Granted(LockLease lease, bool waited, LockEngine engine, LockName name) =>
        new(AcquireStatus.Acquired, lease, 0, replayed: false, waited, engine, name);

    /// <summary>An Idempotency-Key matched: the original lease again, and the same handle (disposing it releases the lock).</summary>
    internal static AcquireResult Replay(LockLease lease, bool waited, LockEngine engine, LockName name) =>
        new(AcquireStatus.Acquired, lease, 0, replayed: true, waited, engine, name);

    /// <summary>Someone else holds it; <paramref name="retryAfterMs"/> is their remaining TTL.</summary>
    internal static AcquireResult HeldBySomeoneElse(long retryAfterMs, bool waited, LockName name) =>
        new(AcquireStatus.Held, null, retryAfterMs, replayed: false, waited, null, name);

    /// <summary>The instance, or the tenant's share of it, had no room for another waiter: the request never waited.</summary>
    internal static AcquireResult NoRoomToWait(NoRoom refused, LockName name) =>
        new(StatusOf(refused), null, 0, replayed: false, waited: false, null, name);

    private protected override Task ReleaseAsync(LockLease lease) => _engine is null ? Task.CompletedTask : _engine.ReleaseAsync(_name, lease.Token);
}
