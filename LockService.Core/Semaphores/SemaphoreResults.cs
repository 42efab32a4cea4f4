using LockService.Core.Locks;

namespace LockService.Core.Semaphores;

/// <summary>A held permit as its holder sees it.</summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Token">The secret that proves ownership of this permit.</param>
/// <param name="Slot">The permit's lane: the lowest slot that was free below its limit.</param>
/// <param name="FencingToken">Strictly increasing per (semaphore, slot) over every acquisition.</param>
/// <param name="Limit">The limit this permit was acquired with.</param>
/// <param name="TtlMs">The TTL set by this acquire or extend.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When the permit was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
public sealed record PermitLease(
    string Key, string Token, int Slot, long FencingToken, int Limit, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner) : IKeptLease;

/// <summary>A held permit as anyone may see it: never its token.</summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Slot">The permit's slot.</param>
/// <param name="FencingToken">The permit's fencing token (per slot).</param>
/// <param name="Limit">The limit it was acquired with.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When it was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record PermitInfo(
    string Key, int Slot, long FencingToken, int Limit, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs);

/// <summary>A semaphore's held permits, as anyone may see them.</summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Held">How many permits are held.</param>
/// <param name="Permits">The permits, by slot: all of them, or the <see cref="SemaphoreEngine.MaxInspected"/> that expire first.</param>
/// <param name="Truncated">True when more permits are held than <paramref name="Permits"/> shows.</param>
public sealed record SemaphoreInfo(string Key, int Held, IReadOnlyList<PermitInfo> Permits, bool Truncated);

/// <summary>One page of a listing of semaphores.</summary>
/// <param name="Semaphores">The semaphores with permits held, none twice; never a token.</param>
/// <param name="Cursor">The next page's cursor, or null when the listing is complete.</param>
/// <param name="CursorError">When the cursor given was refused: why (and <paramref name="Semaphores"/> is empty).</param>
public sealed record SemaphorePage(IReadOnlyList<SemaphoreInfo> Semaphores, string? Cursor, string? CursorError);

/// <summary>How an extend of a permit ended: the new lease, or why the token holds no permit.</summary>
/// <param name="Lease">The permit with its new TTL, or null.</param>
/// <param name="Ended">When not extended: why.</param>
public readonly record struct PermitExtendResult(PermitLease? Lease, LeaseEnd? Ended) : ILeaseResult<PermitLease>
{
    PermitLease? ILeaseResult<PermitLease>.Held => Lease;
}

/// <summary>How a check or a watch of a permit ended.</summary>
/// <param name="Info">The permit while this token holds it, else null.</param>
/// <param name="Ended">When not held: why.</param>
/// <param name="NoRoomToWatch">When a watch was refused, which bound had no room (<see cref="LockOptions.MaxWatchers"/>, or the tenant's share of it).</param>
public readonly record struct PermitCheckResult(PermitInfo? Info, LeaseEnd? Ended, NoRoom NoRoomToWatch = NoRoom.None) : IWatchResult<PermitInfo>
{
    PermitInfo? ILeaseResult<PermitInfo>.Held => Info;
}

/// <summary>What an operator's force-release of one slot released.</summary>
/// <param name="Released">True when a permit held the slot and is released now.</param>
/// <param name="FencingToken">The released permit's fencing token.</param>
/// <param name="Owner">Its owner text, or null.</param>
/// <param name="HeldMs">How long it was held.</param>
/// <param name="Limit">The limit it was acquired with.</param>
public readonly record struct PermitForceReleaseResult(bool Released, long FencingToken, string? Owner, long HeldMs, int Limit);

/// <summary>
/// The outcome of a semaphore acquire (<see cref="AcquireStatus.Held"/>: the semaphore was full and the wait ran out;
/// <see cref="AcquireOutcome{TLease}.RetryAfterMs"/>: when its earliest permit expires). When acquired it is also the
/// permit's handle: disposing it releases the permit.
/// </summary>
public sealed class PermitAcquireResult : AcquireOutcome<PermitLease>
{
    private readonly SemaphoreEngine? _engine;
    private readonly LockName _name;

    private PermitAcquireResult(AcquireStatus status, PermitLease? lease, long retryAfterMs, int held, bool replayed, bool waited, SemaphoreEngine? engine, LockName name)
        : base(status, lease, retryAfterMs, replayed, waited)
    {
        Held = held;
        _engine = engine;
        _name = name;
    }

    /// <summary>How many permits are held: with this one when acquired (0 for a replay), at the last attempt when full.</summary>
    public int Held { get; }

    /// <summary>When acquired: the earliest expiry among the held permits, in ms from now (when waiters must look again); -1 when not known.</summary>
    internal long EarliestExpiryMs { get; private init; }

    internal static PermitAcquireResult Granted(PermitLease lease, int held, long earliestExpiryMs, bool replayed, bool waited, SemaphoreEngine engine, LockName name) =>
        new(AcquireStatus.Acquired, lease, 0, held, replayed, waited, engine, name) { EarliestExpiryMs = earliestExpiryMs };

    internal static PermitAcquireResult Full(long retryAfterMs, int held, bool waited) =>
        new(AcquireStatus.Held, null, retryAfterMs, held, replayed: false, waited, null, default);

    internal static PermitAcquireResult NoRoomToWait(NoRoom refused) =>
        new(StatusOf(refused), null, 0, 0, replayed: false, waited: false, null, default);

    private protected override Task ReleaseAsync(PermitLease lease) => _engine is null ? Task.CompletedTask : _engine.ReleaseAsync(_name, lease.Token);
}
