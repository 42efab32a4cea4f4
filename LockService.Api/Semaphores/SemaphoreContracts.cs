using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Api.Locks;
using LockService.Core.Semaphores;

namespace LockService.Api.Semaphores;

/// <summary>The body of a 201 acquire and a 200 extend of a permit: the permit, token included.</summary>
public sealed record PermitResponse(
    string Key, string Token, int Slot, long FencingToken, int Limit, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs, string? Owner)
{
    internal static PermitResponse From(PermitLease lease) =>
        new(lease.Key, lease.Token, lease.Slot, lease.FencingToken, lease.Limit, lease.TtlMs, lease.ExpiresAt, lease.AcquiredAt, lease.MaxHoldMs, lease.Owner);
}

/// <summary>The body of a check (or watch) of a permit: the permit and its semaphore, never the token.</summary>
public sealed record PermitInfoResponse(
    string Key, int Slot, long FencingToken, int Limit, string? Owner, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs, long? MaxHoldMs)
{
    internal static PermitInfoResponse From(PermitInfo info) =>
        new(info.Key, info.Slot, info.FencingToken, info.Limit, info.Owner, info.AcquiredAt, info.ExpiresAt, info.TtlMs, info.MaxHoldMs);
}

/// <summary>One held permit in an inspection or a listing, never its token.</summary>
public sealed record HeldPermitResponse(int Slot, long FencingToken, int Limit, string? Owner, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs, long? MaxHoldMs)
{
    internal static HeldPermitResponse From(PermitInfo info) =>
        new(info.Slot, info.FencingToken, info.Limit, info.Owner, info.AcquiredAt, info.ExpiresAt, info.TtlMs, info.MaxHoldMs);
}

/// <summary>The body of an inspection: how many permits are held and who holds them (at most 1000, by slot), never a token.</summary>
public sealed record SemaphoreInfoResponse(string Key, int Held, IReadOnlyList<HeldPermitResponse> Permits, bool Truncated)
{
    internal static SemaphoreInfoResponse From(SemaphoreInfo info) =>
        new(info.Key, info.Held, [.. info.Permits.Select(HeldPermitResponse.From)], info.Truncated);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(PermitResponse))]
[JsonSerializable(typeof(PermitInfoResponse))]
[JsonSerializable(typeof(SemaphoreInfoResponse))]
[JsonSerializable(typeof(LostEvent))]
internal sealed partial class SemaphoreJsonContext : JsonSerializerContext;
