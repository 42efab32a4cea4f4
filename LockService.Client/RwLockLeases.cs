using System.Text.Json.Serialization;

namespace LockService.Client;

/// <summary>The two modes of a read/write lock's lease.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RwLockMode>))]
public enum RwLockMode
{
    /// <summary>Shared with other readers; granted while no writer holds the lock and none waits for it.</summary>
    [JsonStringEnumMemberName("read")]
    Read,

    /// <summary>Alone; granted while nobody holds the lock.</summary>
    [JsonStringEnumMemberName("write")]
    Write,
}

/// <summary>
/// A lease of a read/write lock (<c>POST /rwlocks/{key}?mode=read|write</c>): a lease with its mode. Its fencing token
/// is above every earlier lease's of the key, in either mode.
/// </summary>
/// <param name="Key">The read/write lock's name.</param>
/// <param name="Token">The secret that proves ownership of this lease.</param>
/// <param name="Mode">Read (shared) or write (alone).</param>
/// <param name="FencingToken">One sequence per key for both modes.</param>
/// <param name="TtlMs">The TTL granted, authoritative.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
/// <param name="Owner">Free text shown by inspection, or null.</param>
public sealed record RwLease(
    string Key, string Token, [property: JsonPropertyOrder(-1)] RwLockMode Mode, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt,
    DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
    : Lease(Key, Token, FencingToken, TtlMs, ExpiresAt, AcquiredAt, MaxHoldMs, Owner);

/// <summary>A read/write lease as its check or watch describes it: never with its token.</summary>
/// <param name="Key">The read/write lock's name.</param>
/// <param name="Mode">The lease's mode.</param>
/// <param name="FencingToken">The lease's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record RwLeaseInfo(
    string Key, [property: JsonPropertyOrder(-3)] RwLockMode Mode, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt,
    DateTimeOffset AcquiredAt, long? MaxHoldMs)
    : LockInfo(Key, FencingToken, Owner, TtlMs, ExpiresAt, AcquiredAt, MaxHoldMs);

/// <summary>
/// A read/write lock as inspection (<c>GET /rwlocks/{key}</c>) and the operator listing describe it: the mode held,
/// its holders (at most 1000) and how many writers wait on any instance.
/// </summary>
/// <param name="Key">The read/write lock's name.</param>
/// <param name="Mode">Read (one or more readers hold it) or write (one writer does).</param>
/// <param name="Holders">The leases held, never with their tokens.</param>
/// <param name="WritersWaiting">Writers whose waiting acquire is open on any instance: readers are not let in meanwhile.</param>
/// <param name="Truncated">True when more leases are held than listed.</param>
public sealed record RwLockInfo(string Key, RwLockMode Mode, IReadOnlyList<RwHolder> Holders, int WritersWaiting, bool Truncated);

/// <summary>One lease in a read/write lock's inspection: never its token.</summary>
/// <param name="Mode">The lease's mode.</param>
/// <param name="FencingToken">The lease's fencing token.</param>
/// <param name="Owner">Free text given at acquire, or null.</param>
/// <param name="AcquiredAt">When the lease began, from Redis's clock.</param>
/// <param name="ExpiresAt">Informational, from Redis's clock.</param>
/// <param name="TtlMs">The remaining TTL.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record RwHolder(RwLockMode Mode, long FencingToken, string? Owner, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs, long? MaxHoldMs);

/// <summary>One page of <c>GET /admin/rwlocks</c>: the held read/write locks, each as inspection describes it; follow <see cref="Cursor"/> until it is null.</summary>
public sealed record RwLockPage([property: JsonPropertyName("rwlocks")] IReadOnlyList<RwLockInfo> RwLocks, string? Cursor);
