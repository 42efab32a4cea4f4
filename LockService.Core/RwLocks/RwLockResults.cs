using LockService.Core.Leases;

namespace LockService.Core.RwLocks;

/// <summary>A held read or write lease as its holder sees it.</summary>
/// <param name="Key">The read/write lock's name.</param>
/// <param name="Token">The secret that proves ownership of this lease.</param>
/// <param name="Mode">Read or write.</param>
/// <param name="FencingToken">Strictly increasing per name over every lease of either mode.</param>
/// <param name="TtlMs">The TTL set by this acquire or extend.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
public sealed record RwLease(
    string Key, string Token, RwLockMode Mode, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner) : IKeptLease;

/// <summary>A held lease as anyone may see it: never its token.</summary>
/// <param name="Key">The read/write lock's name.</param>
/// <param name="Mode">Read or write.</param>
/// <param name="FencingToken">The lease's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When it was acquired, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record RwLeaseInfo(
    string Key, RwLockMode Mode, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs) : ILeaseInfo;

/// <summary>A read/write lock's holders, as anyone may see them.</summary>
/// <param name="Key">The name.</param>
/// <param name="Mode">The mode held: one writer, or readers.</param>
/// <param name="Holders">The leases that expire first, at most <see cref="RwLockStore.MaxInspected"/>.</param>
/// <param name="WritersWaiting">Writers waiting for it right now, on every instance.</param>
/// <param name="Truncated">True when more leases are held than <paramref name="Holders"/> shows.</param>
public sealed record RwLockInfo(string Key, RwLockMode Mode, IReadOnlyList<RwLeaseInfo> Holders, int WritersWaiting, bool Truncated);

/// <summary>What a refused acquire learned of those in its way.</summary>
/// <param name="WriterHolds">A writer holds the name.</param>
/// <param name="Held">How many leases are held (readers, or the one writer).</param>
/// <param name="WritersWaiting">Writers waiting, this caller's own mark included when it is a writer.</param>
public readonly record struct RwBusy(bool WriterHolds, int Held, int WritersWaiting);

/// <summary>What an acquire of a read/write lock asks for: the lease's terms and its mode.</summary>
/// <param name="Terms">TTL, wait, owner, Idempotency-Key and hold cap, as for any lease.</param>
/// <param name="Mode">Read (shared with other readers) or write (alone); required.</param>
public readonly record struct RwLockRequest(AcquireRequest Terms, RwLockMode? Mode) : ILeaseRequest<RwLockRequest>
{
    /// <summary>The mode parameter's name.</summary>
    public const string ModeName = "mode";

    /// <summary>A waiter is known to the wake policy by its mode (<see cref="RwLockWake"/>).</summary>
    long ILeaseRequest<RwLockRequest>.Claim => Mode == RwLockMode.Write ? RwLockWake.Writer : RwLockWake.Reader;

    /// <summary>The mode a parameter's text names (<c>read</c> or <c>write</c>, exactly), or null.</summary>
    public static RwLockMode? ModeOf(string? text) => text switch
    {
        "read" => RwLockMode.Read,
        "write" => RwLockMode.Write,
        _ => null,
    };

    /// <summary>The rule of the mode's text: <c>read</c> or <c>write</c>, exactly; adds an error naming <see cref="ModeName"/> otherwise.</summary>
    public static bool CheckMode(string text, ref RequestErrors? errors)
    {
        if (ModeOf(text) is not null)
        {
            return true;
        }

        RequestErrors.Add(ref errors, ModeName, "'mode' must be read or write.");
        return false;
    }

    /// <summary>What breaks <see cref="LeaseRules"/> (with a stream's, when <paramref name="stream"/>) or the mode's rule, or null when the request is valid.</summary>
    public RequestErrors? Validate(LeaseOptions limits, bool stream = false)
    {
        RequestErrors? errors = null;
        if (Mode is null)
        {
            RequestErrors.Add(ref errors, ModeName, "'mode' is required: read (shared with other readers) or write (alone).");
        }

        return RequestErrors.Merge(errors, Terms.Validate(limits, stream));
    }

    RwLockRequest ILeaseRequest<RwLockRequest>.WithTerms(AcquireRequest terms) => this with { Terms = terms };
}
