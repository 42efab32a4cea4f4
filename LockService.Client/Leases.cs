using System.Text.Json.Serialization;

namespace LockService.Client;

/// <summary>
/// A lock obtained by acquire (or renewed by extend): the body of <c>201</c> and of extend's <c>200</c>. A semaphore's
/// permit is a <see cref="Permit"/>, a lease with a slot and a limit besides.
/// </summary>
/// <param name="Key">The lock's name.</param>
/// <param name="Token">The secret that proves ownership; needed for release, extend, check and watch.</param>
/// <param name="FencingToken">Strictly increasing per key; pass it to the protected resource so it can refuse stale writers.</param>
/// <param name="TtlMs">The TTL granted, authoritative (the expiry is this many ms after the response).</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
public record Lease(
    string Key, [property: JsonPropertyOrder(-2)] string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
{
    // Virtual, so that a kind whose body names them otherwise (an election's name and term, and no owner) says so in
    // its own record (see Leadership) while every handle reads them here; ordered as the contract lists them.

    /// <summary>The lock's name.</summary>
    [JsonPropertyOrder(-3)]
    public virtual string Key { get; init; } = Key;

    /// <summary>Strictly increasing per key; pass it to the protected resource so it can refuse stale writers.</summary>
    [JsonPropertyOrder(-1)]
    public virtual long FencingToken { get; init; } = FencingToken;

    /// <summary>Free text shown by inspection, or null.</summary>
    public virtual string? Owner { get; init; } = Owner;
}

/// <summary>
/// A permit of a counting semaphore (<c>POST /semaphores/{key}?limit=N</c>): a lease with its slot and its limit (which
/// its JSON puts after the lease's members).
/// </summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Token">The secret that proves ownership of this permit.</param>
/// <param name="Slot">The permit's lane, 0..limit-1: the lowest free one when it was acquired.</param>
/// <param name="FencingToken">Strictly increasing per (key, slot): a resource with <paramref name="Limit"/> lanes fences each lane.</param>
/// <param name="Limit">The limit this permit was acquired with.</param>
/// <param name="TtlMs">The TTL granted, authoritative.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the permit began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
public sealed record Permit(
    string Key, string Token, [property: JsonPropertyOrder(1)] int Slot, long FencingToken, [property: JsonPropertyOrder(1)] int Limit, long TtlMs,
    DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
    : Lease(Key, Token, FencingToken, TtlMs, ExpiresAt, AcquiredAt, MaxHoldMs, Owner);

/// <summary>
/// A held lock as inspection, check, watch and listing describe it: never with its token. A permit's check or watch
/// describes it as a <see cref="PermitInfo"/>.
/// </summary>
/// <param name="Key">The lock's name.</param>
/// <param name="FencingToken">The holder's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public record LockInfo(
    string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs)
{
    // Virtual for the same reason as Lease's (see LeaderInfo, which has none of the last three).

    /// <summary>The lock's name.</summary>
    [JsonPropertyOrder(-3)]
    public virtual string Key { get; init; } = Key;

    /// <summary>The holder's fencing token.</summary>
    [JsonPropertyOrder(-2)]
    public virtual long FencingToken { get; init; } = FencingToken;

    /// <summary>Free text given at acquire, or null.</summary>
    [JsonPropertyOrder(-1)]
    public virtual string? Owner { get; init; } = Owner;

    /// <summary>The hold cap, or null without one.</summary>
    public virtual long? MaxHoldMs { get; init; } = MaxHoldMs;
}

/// <summary>A held permit as its check or watch describes it: never with its token.</summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Slot">The permit's lane.</param>
/// <param name="FencingToken">The permit's fencing token (per key and slot).</param>
/// <param name="Limit">The limit the permit was acquired with.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the permit began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record PermitInfo(
    string Key, [property: JsonPropertyOrder(1)] int Slot, long FencingToken, [property: JsonPropertyOrder(1)] int Limit, string? Owner, long TtlMs,
    DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs)
    : LockInfo(Key, FencingToken, Owner, TtlMs, ExpiresAt, AcquiredAt, MaxHoldMs);

/// <summary>
/// A semaphore as inspection (<c>GET /semaphores/{key}</c>) and the operator listing describe it: how many permits are
/// held and who holds them.
/// </summary>
/// <param name="Key">The semaphore's name.</param>
/// <param name="Held">How many permits are held.</param>
/// <param name="Permits">The held permits by slot (at most 1000), never with their tokens.</param>
/// <param name="Truncated">True when more permits are held than listed.</param>
public sealed record SemaphoreInfo(string Key, int Held, IReadOnlyList<HeldPermit> Permits, bool Truncated);

/// <summary>One held permit in a semaphore's inspection: never its token.</summary>
/// <param name="Slot">The permit's lane.</param>
/// <param name="FencingToken">The permit's fencing token (per key and slot).</param>
/// <param name="Limit">The limit the permit was acquired with.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="AcquiredAt">When the permit began, from Redis's clock.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record HeldPermit(int Slot, long FencingToken, int Limit, string? Owner, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs, long? MaxHoldMs);

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

/// <summary>The answer of check or watch: held (with the lock's description, a <see cref="PermitInfo"/> for a permit) or ended (with the reason).</summary>
public sealed record LeaseStatus(LockInfo? Info, LeaseEndReason? EndReason)
{
    /// <summary>True while the token still holds the lock.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Info))]
    public bool Held => Info is not null;
}

/// <summary>The answer of extend: the renewed lease (a <see cref="Permit"/> for a permit), or why the token no longer holds it.</summary>
public sealed record ExtendResult(Lease? Lease, LeaseEndReason? EndReason)
{
    /// <summary>True when the lock was extended.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Lease))]
    public bool Extended => Lease is not null;
}

/// <summary>The answer of release: released, or why the token did not hold the lock (the lock is left untouched).</summary>
public sealed record ReleaseResult(bool Released, LeaseEndReason? EndReason);

/// <summary>
/// The answer of a non-waiting or timed-out acquire: the lease (a <see cref="Permit"/> for a semaphore), or how long
/// until a place may free up (the holder's remaining TTL; for a full semaphore, the earliest permit's).
/// </summary>
public sealed record AcquireResult(Lease? Lease, TimeSpan? RetryAfter)
{
    /// <summary>For a campaign that another candidate's leadership refused (<c>409 election_led</c>): who leads.</summary>
    public LeaderInfo? Leader { get; init; }

    /// <summary>True when this caller got the lock.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Lease))]
    public bool Acquired => Lease is not null;
}

/// <summary>One page of <c>GET /admin/locks</c>; follow <see cref="Cursor"/> until it is null.</summary>
public sealed record LockPage(IReadOnlyList<LockInfo> Locks, string? Cursor);

/// <summary>
/// One page of <c>GET /admin/semaphores</c>: the semaphores with permits held, each as inspection describes it; follow
/// <see cref="Cursor"/> until it is null.
/// </summary>
public sealed record SemaphorePage(IReadOnlyList<SemaphoreInfo> Semaphores, string? Cursor);
