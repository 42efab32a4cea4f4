namespace LockService.Core.Locks;

/// <summary>A held lock as its owner sees it.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="Token">The secret that proves ownership.</param>
/// <param name="FencingToken">Strictly increasing per key over every acquisition.</param>
/// <param name="TtlMs">The TTL set by this acquire or extend.</param>
/// <param name="ExpiresAt">Informational expiry, from this process's clock.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
public sealed record LockLease(string Key, string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, string? Owner);

/// <summary>A held lock as anyone may see it: never the token.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="FencingToken">The holder's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational expiry, from this process's clock.</param>
public sealed record LockInfo(string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt);

/// <summary>What an acquire asks for.</summary>
/// <param name="TtlMs">How long the lock lives unless released or extended.</param>
/// <param name="WaitMs">How long to wait in the server for a held lock; 0 answers at once.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
/// <param name="IdempotencyKey">A retry of the same acquire while its lock is held gets the same lease back.</param>
public readonly record struct AcquireRequest(long TtlMs, long WaitMs = 0, string? Owner = null, string? IdempotencyKey = null)
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

        return errors;
    }
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
}

/// <summary>
/// The outcome of an acquire. When acquired it is also the lock's handle: disposing it releases the lock,
/// so .NET callers can write <c>await using var l = await engine.AcquireAsync(...)</c>.
/// </summary>
public sealed class AcquireResult : IAsyncDisposable
{
    private readonly LockEngine? _engine;
    private readonly LockName _name;
    private int _released;

    private AcquireResult(AcquireStatus status, LockLease? lease, long retryAfterMs, bool replayed, bool waited, LockEngine? engine, LockName name)
    {
        _name = name;
        Status = status;
        Lease = lease;
        RetryAfterMs = retryAfterMs;
        Replayed = replayed;
        Waited = waited;
        _engine = engine;
    }

    /// <summary>How the acquire ended.</summary>
    public AcquireStatus Status { get; }

    /// <summary>True when the caller holds the lock.</summary>
    public bool Acquired => Status == AcquireStatus.Acquired;

    /// <summary>The lease when acquired, else null.</summary>
    public LockLease? Lease { get; }

    /// <summary>When held: the holder's remaining TTL, a hint for when to try again.</summary>
    public long RetryAfterMs { get; }

    /// <summary>True when an Idempotency-Key matched and the original lease was returned again.</summary>
    public bool Replayed { get; }

    /// <summary>True when the request waited in the server (its first attempt found the lock held).</summary>
    public bool Waited { get; }

    /// <summary>The caller holds the lock now; disposing the result releases it through <paramref name="engine"/>.</summary>
    internal static AcquireResult Granted(LockLease lease, bool waited, LockEngine engine, LockName name) =>
        new(AcquireStatus.Acquired, lease, 0, replayed: false, waited, engine, name);

    /// <summary>An Idempotency-Key matched: the original lease again, and the same handle (disposing it releases the lock).</summary>
    internal static AcquireResult Replay(LockLease lease, bool waited, LockEngine engine, LockName name) =>
        new(AcquireStatus.Acquired, lease, 0, replayed: true, waited, engine, name);

    /// <summary>Someone else holds it; <paramref name="retryAfterMs"/> is their remaining TTL.</summary>
    internal static AcquireResult HeldBySomeoneElse(long retryAfterMs, bool waited, LockName name) =>
        new(AcquireStatus.Held, null, retryAfterMs, replayed: false, waited, null, name);

    /// <summary>The instance had no room for another waiter: the request never waited.</summary>
    internal static AcquireResult NoRoomToWait(LockName name) =>
        new(AcquireStatus.TooManyWaiters, null, 0, replayed: false, waited: false, null, name);

    /// <summary>Releases the lock if this result acquired it and it was not released yet.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Lease is not null && _engine is not null && Interlocked.Exchange(ref _released, 1) == 0)
        {
            await _engine.ReleaseAsync(_name, Lease.Token).ConfigureAwait(false);
        }
    }
}
