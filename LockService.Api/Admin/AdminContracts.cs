using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Api.Locks;
using LockService.Api.Semaphores;

namespace LockService.Api.Admin;

/// <summary>A page of the held locks: follow <c>cursor</c> until it is null. Never a token.</summary>
public sealed record LockListResponse(IReadOnlyList<LockInfoResponse> Locks, string? Cursor);

/// <summary>A page of the semaphores with permits held, each with its permits: follow <c>cursor</c> until it is null. Never a token.</summary>
public sealed record SemaphoreListResponse(IReadOnlyList<SemaphoreInfoResponse> Semaphores, string? Cursor);

/// <summary>What this instance is doing: its waiting requests and watches, and its lock rates over the last seconds.</summary>
public sealed record InstanceStatsResponse(
    int WaitingRequests, int Watches, double AcquiresPerSecond, double ReleasesPerSecond, double ForcedReleasesPerSecond, double RateWindowSeconds);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LockListResponse))]
[JsonSerializable(typeof(SemaphoreListResponse))]
[JsonSerializable(typeof(InstanceStatsResponse))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
