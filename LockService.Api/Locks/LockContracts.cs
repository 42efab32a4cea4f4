using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Core.Leases;
using LockService.Core.Locks;

namespace LockService.Api.Locks;

/// <summary>The body of a 201 acquire and a 200 extend: the lease, token included.</summary>
public sealed record LeaseResponse(
    string Key, string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
{
    internal static LeaseResponse From(LockLease lease) =>
        new(lease.Key, lease.Token, lease.FencingToken, lease.TtlMs, lease.ExpiresAt, lease.AcquiredAt, lease.MaxHoldMs, lease.Owner);
}

/// <summary>The body of an inspection: who holds the lock and for how long, never the token.</summary>
public sealed record LockInfoResponse(string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs)
{
    internal static LockInfoResponse From(LockInfo info) =>
        new(info.Key, info.FencingToken, info.Owner, info.TtlMs, info.ExpiresAt, info.AcquiredAt, info.MaxHoldMs);
}

/// <summary>The data of a lock stream's <c>event: lost</c>: why the lease ended (forced, expired, released, unavailable).</summary>
public sealed record LostEvent(string Reason);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LeaseResponse))]
[JsonSerializable(typeof(LockInfoResponse))]
[JsonSerializable(typeof(LostEvent))]
internal sealed partial class LockJsonContext : JsonSerializerContext;
