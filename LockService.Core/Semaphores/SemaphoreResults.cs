using LockService.Core.Leases;

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
    string Key, int Slot, long FencingToken, int Limit, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs) : ILeaseInfo;

/// <summary>A semaphore's held permits, as anyone may see them.</summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Held">How many permits are held.</param>
/// <param name="Permits">The permits, by slot: all of them, or the <see cref="SemaphoreStore.MaxInspected"/> that expire first.</param>
/// <param name="Truncated">True when more permits are held than <paramref name="Permits"/> shows.</param>
public sealed record SemaphoreInfo(string Key, int Held, IReadOnlyList<PermitInfo> Permits, bool Truncated);

/// <summary>What an operator's force-release of one slot released.</summary>
/// <param name="Released">True when a permit held the slot and is released now.</param>
/// <param name="FencingToken">The released permit's fencing token.</param>
/// <param name="Owner">Its owner text, or null.</param>
/// <param name="HeldMs">How long it was held.</param>
/// <param name="Limit">The limit it was acquired with.</param>
public readonly record struct PermitForceReleaseResult(bool Released, long FencingToken, string? Owner, long HeldMs, int Limit);

/// <summary>What a refused acquire of a permit learned: how many permits were held (at least the caller's limit).</summary>
/// <param name="Held">Permits held at the last attempt.</param>
public readonly record struct SemaphoreBusy(int Held);

/// <summary>What an acquire of a permit asks for: the lease's terms and the caller's limit.</summary>
/// <param name="Terms">TTL, wait, owner, Idempotency-Key and hold cap, as for any lease.</param>
/// <param name="Limit">How many permits may be held at once, as this caller sees it (1 .. <see cref="SemaphoreOptions.MaxLimit"/>); required.</param>
public readonly record struct PermitRequest(AcquireRequest Terms, long? Limit) : ILeaseRequest<PermitRequest>
{
    /// <summary>The limit parameter's name.</summary>
    public const string LimitName = "limit";

    /// <summary>A waiter is known to the wake policy by its limit: it can be let in while fewer permits than that are held.</summary>
    long ILeaseRequest<PermitRequest>.Claim => Limit ?? 0;

    /// <summary>What breaks <see cref="LeaseRules"/> or the limit's rule, or null when the request is valid.</summary>
    public RequestErrors? Validate(LeaseOptions limits, SemaphoreOptions options, bool stream = false)
    {
        RequestErrors? errors = null;
        if (Limit is null)
        {
            RequestErrors.Add(ref errors, LimitName, $"'limit' is required: how many permits may be held at once, 1 to {options.MaxLimit}.");
        }
        else if (Limit < 1 || Limit > options.MaxLimit)
        {
            RequestErrors.Add(ref errors, LimitName, $"'limit' must be between 1 and {options.MaxLimit}; got {Limit}.");
        }

        return RequestErrors.Merge(errors, Terms.Validate(limits, stream));
    }

    PermitRequest ILeaseRequest<PermitRequest>.WithTerms(AcquireRequest terms) => this with { Terms = terms };
}
