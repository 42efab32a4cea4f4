using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Core.Locks;

namespace LockService.Api.Locks;

/// <summary>The body of a 201 acquire and a 200 extend: the lease, token included.</summary>
public sealed record LeaseResponse(string Key, string Token, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, string? Owner)
{
    internal static LeaseResponse From(LockLease lease) =>
        new(lease.Key, lease.Token, lease.FencingToken, lease.TtlMs, lease.ExpiresAt, lease.Owner);
}

/// <summary>The body of an inspection: who holds the lock and for how long, never the token.</summary>
public sealed record LockInfoResponse(string Key, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt)
{
    internal static LockInfoResponse From(LockInfo info) =>
        new(info.Key, info.FencingToken, info.Owner, info.TtlMs, info.ExpiresAt);
}

/// <summary>Parameters of an acquire, as a JSON body (all optional; the same names work as query parameters).</summary>
/// <param name="TtlMs">How long the lock lives unless released or extended (default 30000).</param>
/// <param name="WaitMs">How long to wait in the server for a held lock (default 0).</param>
/// <param name="Owner">Free text shown by inspection.</param>
public sealed record AcquireBody(long? TtlMs, long? WaitMs, string? Owner);

/// <summary>Parameters of an extend, as a JSON body (optional; also a query parameter).</summary>
/// <param name="TtlMs">The new remaining TTL (default: the TTL the lock was acquired with).</param>
public sealed record ExtendBody(long? TtlMs);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LeaseResponse))]
[JsonSerializable(typeof(LockInfoResponse))]
[JsonSerializable(typeof(AcquireBody))]
[JsonSerializable(typeof(ExtendBody))]
internal sealed partial class LockJsonContext : JsonSerializerContext;
