using System.Text.Json.Serialization;

namespace LockService.Client;

/// <summary>A lock obtained by acquire (or renewed by extend): the body of <c>201</c> and of extend's <c>200</c>.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="Token">The secret that proves ownership; needed for release, extend, check and watch.</param>
/// <param name="FencingToken">Strictly increasing per key; pass it to the protected resource so it can refuse stale writers.</param>
/// <param name="TtlMs">The TTL granted, authoritative (the expiry is this many ms after the response).</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
public sealed record Lease(
    string Key, string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner);

/// <summary>A held lock as inspection, check, watch and listing describe it: never with its token.</summary>
/// <param name="Key">The lock's name.</param>
/// <param name="FencingToken">The holder's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record LockInfo(
    string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs);

/// <summary>Why a lease ended, as the service's <c>reason</c> says (or <see cref="Unavailable"/>, the client's own verdict).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LeaseEndReason>))]
public enum LeaseEndReason
{
    /// <summary>The service does not remember this token: it never held the lock, or its lease ended long ago.</summary>
    Unknown,

    /// <summary>Released with its token.</summary>
    Released,

    /// <summary>An operator force-released it.</summary>
    Forced,

    /// <summary>Its TTL or hold cap ran out, or it vanished from Redis.</summary>
    Expired,

    /// <summary>The service could not be reached to renew it before its last granted expiry (decided by the client).</summary>
    Unavailable,
}

/// <summary>The answer of check or watch: held (with the lock's description) or ended (with the reason).</summary>
public sealed record LeaseStatus(LockInfo? Info, LeaseEndReason? EndReason)
{
    /// <summary>True while the token still holds the lock.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Info))]
    public bool Held => Info is not null;
}

/// <summary>The answer of extend: the renewed lease, or why the token no longer holds the lock.</summary>
public sealed record ExtendResult(Lease? Lease, LeaseEndReason? EndReason)
{
    /// <summary>True when the lock was extended.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Lease))]
    public bool Extended => Lease is not null;
}

/// <summary>The answer of release: released, or why the token did not hold the lock (the lock is left untouched).</summary>
public sealed record ReleaseResult(bool Released, LeaseEndReason? EndReason);

/// <summary>The answer of a non-waiting or timed-out acquire: the lease, or how long the holder's TTL still runs.</summary>
public sealed record AcquireResult(Lease? Lease, TimeSpan? RetryAfter)
{
    /// <summary>True when this caller got the lock.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Lease))]
    public bool Acquired => Lease is not null;
}

/// <summary>One page of <c>GET /admin/locks</c>; follow <see cref="Cursor"/> until it is null.</summary>
public sealed record LockPage(IReadOnlyList<LockInfo> Locks, string? Cursor);
