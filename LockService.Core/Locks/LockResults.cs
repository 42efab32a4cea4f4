using LockService.Core.Leases;
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
public sealed record LockInfo(string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs) : ILeaseInfo;

/// <summary>What a force-release released.</summary>
/// <param name="Released">True when a lock was held and is released now.</param>
/// <param name="FencingToken">The released holder's fencing token.</param>
/// <param name="Owner">The released holder's owner text, or null.</param>
/// <param name="HeldMs">How long it was held.</param>
public readonly record struct ForceReleaseResult(bool Released, long FencingToken, string? Owner, long HeldMs);
