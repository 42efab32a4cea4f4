namespace LockService.Core.Leases;

/// <summary>The kinds of lease the service hands out. Each is a store over the one <see cref="LeaseEngine"/>.</summary>
public enum LeaseKind
{
    /// <summary>A lock: one holder at a time.</summary>
    Lock,

    /// <summary>A semaphore's permit: up to a limit of holders at once.</summary>
    Semaphore,

    /// <summary>A read/write lock's lease: many readers or one writer.</summary>
    RwLock,

    /// <summary>An election's leadership.</summary>
    Election,
}

/// <summary>Why a token no longer holds its lease.</summary>
public enum LeaseEnd
{
    /// <summary>Released with its token.</summary>
    Released = 1,

    /// <summary>An operator force-released it.</summary>
    Forced = 2,

    /// <summary>Its TTL or its hold cap ran out.</summary>
    Expired = 3,

    /// <summary>The service does not remember this token: it never held this lease, or its lease ended long ago.</summary>
    Unknown = 4,

    /// <summary>A kept lease (<see cref="LeaseEngine.KeepAsync{TRequest, TLease, TInfo, TBusy}"/>) could not be renewed before its TTL ran out: Redis was unreachable.</summary>
    Unavailable = 5,
}

/// <summary>A lease's name within a tenant's key space, and the Redis key every key of the lease is named after.</summary>
/// <param name="Name">The lease's name.</param>
/// <param name="Key">Its main Redis key (prefix, tenant, name as hash tag): the key its wait queue is known by.</param>
public readonly record struct LeaseRef(LeaseName Name, string Key);

/// <summary>What keeping a lease of any kind alive needs of it.</summary>
public interface IKeptLease
{
    /// <summary>The token that holds it.</summary>
    string Token { get; }

    /// <summary>Its TTL as granted.</summary>
    long TtlMs { get; }

    /// <summary>When it expires unless renewed, by Redis's clock.</summary>
    DateTimeOffset ExpiresAt { get; }
}

/// <summary>What a watch needs of a lease as anyone may see it.</summary>
public interface ILeaseInfo
{
    /// <summary>What remains of its TTL.</summary>
    long TtlMs { get; }
}

/// <summary>How a release ended.</summary>
/// <param name="Released">True when this token held the lease and it is released now.</param>
/// <param name="Ended">When not released: why this token no longer holds it.</param>
/// <param name="HeldMs">When released: how long the lease was held.</param>
public readonly record struct ReleaseResult(bool Released, LeaseEnd? Ended, long HeldMs);

/// <summary>How an extend ended: the lease with its new TTL, or why the token no longer holds it.</summary>
/// <typeparam name="TLease">The kind's lease.</typeparam>
/// <param name="Lease">The lease with its new TTL, or null when the token no longer holds it.</param>
/// <param name="Ended">When not extended: why.</param>
public readonly record struct ExtendResult<TLease>(TLease? Lease, LeaseEnd? Ended)
    where TLease : class;

/// <summary>How a check or a watch ended.</summary>
/// <typeparam name="TInfo">The kind's lease as anyone may see it.</typeparam>
/// <param name="Info">The lease while this token holds it, else null.</param>
/// <param name="Ended">When not held: why.</param>
/// <param name="NoRoomToWatch">When a watch was refused, which bound had no room (<see cref="LeaseOptions.MaxWatchers"/>, or the tenant's share of it).</param>
public readonly record struct CheckResult<TInfo>(TInfo? Info, LeaseEnd? Ended, NoRoom NoRoomToWatch = NoRoom.None)
    where TInfo : class;

/// <summary>What a refused acquire of a kind whose refusal says nothing more than when to try again learns.</summary>
public readonly record struct NoDetail;

/// <summary>How an acquire ended.</summary>
public enum AcquireStatus
{
    /// <summary>The caller holds the lease now.</summary>
    Acquired,

    /// <summary>Others hold it (a semaphore: as many as the caller's limit) and the wait (if any) ran out.</summary>
    Held,

    /// <summary>This instance already has as many waiters as it allows.</summary>
    TooManyWaiters,

    /// <summary>The caller's tenant already has its share of this instance's waiters (<see cref="LeaseOptions.TenantShare"/>).</summary>
    TenantTooManyWaiters,
}

/// <summary>
/// The outcome of an acquire of any kind of lease. When acquired it is also the lease's handle: disposing it releases the
/// lease, so .NET callers can write <c>await using var l = await engine.AcquireAsync(...)</c>.
/// </summary>
/// <typeparam name="TLease">The kind's lease.</typeparam>
/// <typeparam name="TBusy">What a refused acquire learns of the leases in its way.</typeparam>
public sealed class AcquireResult<TLease, TBusy> : IAsyncDisposable
    where TLease : class, IKeptLease
{
    private readonly ILeaseReleaser? _releaser;
    private readonly LeaseName _name;
    private int _released;

    private AcquireResult(AcquireStatus status, TLease? lease, long retryAfterMs, TBusy busy, bool replayed, bool waited, ILeaseReleaser? releaser, LeaseName name)
    {
        Status = status;
        Lease = lease;
        RetryAfterMs = retryAfterMs;
        Busy = busy;
        Replayed = replayed;
        Waited = waited;
        _releaser = releaser;
        _name = name;
    }

    /// <summary>How the acquire ended.</summary>
    public AcquireStatus Status { get; }

    /// <summary>True when the caller holds the lease.</summary>
    public bool Acquired => Status == AcquireStatus.Acquired;

    /// <summary>The lease when acquired, else null.</summary>
    public TLease? Lease { get; }

    /// <summary>When not acquired: when the lease in the way runs out, in ms from now, a hint for when to try again.</summary>
    public long RetryAfterMs { get; }

    /// <summary>When held by others: what the last attempt learned of them (a semaphore's count, ...).</summary>
    public TBusy Busy { get; }

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
        if (Lease is not null && _releaser is not null && Interlocked.Exchange(ref _released, 1) == 0)
        {
            await _releaser.ReleaseAsync(_name, Lease.Token).ConfigureAwait(false);
        }
    }

    internal static AcquireResult<TLease, TBusy> Granted(TLease lease, bool replayed, bool waited, ILeaseReleaser releaser, LeaseName name) =>
        new(AcquireStatus.Acquired, lease, 0, default!, replayed, waited, releaser, name);

    internal static AcquireResult<TLease, TBusy> Taken(long retryAfterMs, TBusy busy, bool waited) =>
        new(AcquireStatus.Held, null, retryAfterMs, busy, replayed: false, waited, null, default);

    internal static AcquireResult<TLease, TBusy> NoRoomToWait(NoRoom refused) =>
        new(refused == NoRoom.Tenant ? AcquireStatus.TenantTooManyWaiters : AcquireStatus.TooManyWaiters, null, 0, default!, replayed: false, waited: false, null, default);

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
}

/// <summary>What an acquire asks for, whatever the kind: the terms of its lease.</summary>
/// <param name="TtlMs">How long the lease lives unless released or extended.</param>
/// <param name="WaitMs">How long to wait in the server while others hold it; 0 answers at once.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
/// <param name="IdempotencyKey">A retry of the same acquire while its lease is held gets the same lease back.</param>
/// <param name="MaxHoldMs">The longest the lease may be held in total (<see cref="TtlMs"/> .. <see cref="LeaseOptions.MaxHoldMs"/>); null: <see cref="LeaseOptions.DefaultMaxHoldMs"/>.</param>
public readonly record struct AcquireRequest(long TtlMs, long WaitMs = 0, string? Owner = null, string? IdempotencyKey = null, long? MaxHoldMs = null)
    : ILeaseRequest<AcquireRequest>
{
    AcquireRequest ILeaseRequest<AcquireRequest>.Terms => this;

    long ILeaseRequest<AcquireRequest>.Claim => 0;

    /// <summary>
    /// What breaks <see cref="LeaseRules"/> under <paramref name="options"/> (and, for a lease a stream will hold, the
    /// stream's rules: <see cref="LeaseRules.CheckStream"/>), or null when the request is valid.
    /// </summary>
    public RequestErrors? Validate(LeaseOptions options, bool stream = false)
    {
        RequestErrors? errors = null;
        LeaseRules.CheckTtl(TtlMs, options, ref errors);
        LeaseRules.CheckWait(WaitMs, options, ref errors);
        if (Owner is not null)
        {
            LeaseRules.CheckOwner(Owner, ref errors);
        }

        if (IdempotencyKey is not null)
        {
            LeaseRules.CheckIdempotencyKey(IdempotencyKey, ref errors);
        }

        if (MaxHoldMs is long maxHold)
        {
            LeaseRules.CheckMaxHold(maxHold, TtlMs, options, ref errors);
        }

        if (stream)
        {
            LeaseRules.CheckStream(this, ref errors);
        }

        return errors;
    }

    /// <summary>
    /// The request with the default hold cap applied: <see cref="LeaseOptions.DefaultMaxHoldMs"/> when none was asked
    /// for (0 = none), the TTL cut to it when it is shorter.
    /// </summary>
    public AcquireRequest WithDefaults(LeaseOptions options) =>
        MaxHoldMs is null && options.DefaultMaxHoldMs > 0
            ? this with { MaxHoldMs = options.DefaultMaxHoldMs, TtlMs = Math.Min(TtlMs, options.DefaultMaxHoldMs) }
            : this;

    AcquireRequest ILeaseRequest<AcquireRequest>.WithTerms(AcquireRequest terms) => terms;
}

/// <summary>What an extend asks for.</summary>
/// <param name="TtlMs">The new remaining TTL; null keeps the TTL the lease was acquired with.</param>
public readonly record struct ExtendRequest(long? TtlMs = null)
{
    /// <summary>
    /// What breaks <see cref="LeaseRules"/> under <paramref name="options"/> (and, for a lease a stream will hold, the
    /// stream's rules: <see cref="LeaseRules.CheckStream"/>), or null when the request is valid.
    /// </summary>
    public RequestErrors? Validate(LeaseOptions options, bool stream = false)
    {
        RequestErrors? errors = null;
        if (TtlMs is long ttl)
        {
            LeaseRules.CheckTtl(ttl, options, ref errors);
        }

        return errors;
    }
}

/// <summary>One kind's acquire request: the lease's terms and what the kind adds (a permit's limit, a mode).</summary>
/// <typeparam name="TSelf">The request's own type.</typeparam>
public interface ILeaseRequest<TSelf>
    where TSelf : ILeaseRequest<TSelf>
{
    /// <summary>The lease's terms.</summary>
    AcquireRequest Terms { get; }

    /// <summary>What the kind's wake policy knows a waiter by (a permit's limit); 0 for kinds whose waiters are all alike.</summary>
    long Claim { get; }

    /// <summary>The same request with other terms (the defaults applied).</summary>
    TSelf WithTerms(AcquireRequest terms);
}

/// <summary>Releases a lease by its token: what a handle (<see cref="AcquireResult{TLease, TBusy}"/>) and the engine need of its store.</summary>
internal interface ILeaseReleaser
{
    Task<ReleaseResult> ReleaseAsync(LeaseName name, string token);

    /// <summary>A release sent without the call's time bound, for a lease whose acquire the caller was told failed.</summary>
    Task SendReleaseAsync(LeaseRef lease, string token);
}
