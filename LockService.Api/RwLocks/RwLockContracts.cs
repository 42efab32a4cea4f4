using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Api.Locks;
using LockService.Core.RwLocks;

namespace LockService.Api.RwLocks;

/// <summary>The body of a 201 acquire and a 200 extend of a read/write lease: the lease, token included.</summary>
public sealed record RwLeaseResponse(
    string Key, string Token, string Mode, long FencingToken, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
{
    internal static RwLeaseResponse From(RwLease lease) =>
        new(lease.Key, lease.Token, RwModes.Name(lease.Mode), lease.FencingToken, lease.TtlMs, lease.ExpiresAt, lease.AcquiredAt, lease.MaxHoldMs, lease.Owner);
}

/// <summary>The body of a check (or watch) of a read/write lease: the lease and its name, never the token.</summary>
public sealed record RwLeaseInfoResponse(
    string Key, string Mode, long FencingToken, string? Owner, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs)
{
    internal static RwLeaseInfoResponse From(RwLeaseInfo info) =>
        new(info.Key, RwModes.Name(info.Mode), info.FencingToken, info.Owner, info.TtlMs, info.ExpiresAt, info.AcquiredAt, info.MaxHoldMs);
}

/// <summary>One holder in an inspection or a listing, never its token.</summary>
public sealed record RwHolderResponse(string Mode, long FencingToken, string? Owner, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs, long? MaxHoldMs)
{
    internal static RwHolderResponse From(RwLeaseInfo info) =>
        new(RwModes.Name(info.Mode), info.FencingToken, info.Owner, info.AcquiredAt, info.ExpiresAt, info.TtlMs, info.MaxHoldMs);
}

/// <summary>
/// The body of an inspection: the mode held, who holds it (at most 1000, those that expire first), and how many writers wait
/// on any instance; never a token.
/// </summary>
public sealed record RwLockInfoResponse(string Key, string Mode, IReadOnlyList<RwHolderResponse> Holders, int WritersWaiting, bool Truncated)
{
    internal static RwLockInfoResponse From(RwLockInfo info) =>
        new(info.Key, RwModes.Name(info.Mode), [.. info.Holders.Select(RwHolderResponse.From)], info.WritersWaiting, info.Truncated);
}

/// <summary>A mode's name on the wire.</summary>
internal static class RwModes
{
    public static string Name(RwLockMode mode) => mode == RwLockMode.Write ? "write" : "read";
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(RwLeaseResponse))]
[JsonSerializable(typeof(RwLeaseInfoResponse))]
[JsonSerializable(typeof(RwLockInfoResponse))]
[JsonSerializable(typeof(LostEvent))]
internal sealed partial class RwLockJsonContext : JsonSerializerContext;
