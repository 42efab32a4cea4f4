using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Api.Locks;
using LockService.Api.Semaphores;

namespace LockService.Api.Admin;

/// <summary>A page of the held locks: follow <c>cursor</c> until it is null. Never a token.</summary>
public sealed record LockListResponse(IReadOnlyList<LockInfoResponse> Locks, string? Cursor);

/// <summary>A page of the semaphores with permits held, each with its permits: follow <c>cursor</c> until it is null. Never a token.</summary>
public sealed record SemaphoreListResponse(IReadOnlyList<SemaphoreInfoResponse> Semaphores, string? Cursor);

/// <summary>What this instance is doing: its waiting requests and watches, and its rates over the last seconds, in total and per kind.</summary>
public sealed record InstanceStatsResponse(
    int WaitingRequests, int Watches, double AcquiresPerSecond, double ReleasesPerSecond, double ForcedReleasesPerSecond, double RateWindowSeconds,
    IReadOnlyDictionary<string, KindStatsResponse> Kinds);

/// <summary>One kind's share of an instance's figures (<c>lock</c>, <c>semaphore</c>, ...).</summary>
public sealed record KindStatsResponse(int WaitingRequests, double AcquiresPerSecond, double ReleasesPerSecond);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(LockListResponse))]
[JsonSerializable(typeof(SemaphoreListResponse))]
[JsonSerializable(typeof(InstanceStatsResponse))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
