using System.Text.Json;
using System.Text.Json.Serialization;
using LockService.Api.Locks;
using LockService.Core.Elections;

namespace LockService.Api.Elections;

/// <summary>The body of a 201 campaign and a 200 proclaim or extend: the leadership, token included.</summary>
public sealed record CampaignResponse(
    string Name, string Token, long Term, string Value, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs)
{
    internal static CampaignResponse From(ElectionLease lease) =>
        new(lease.Name, lease.Token, lease.Term, lease.Value, lease.TtlMs, lease.ExpiresAt, lease.AcquiredAt, lease.MaxHoldMs);
}

/// <summary>The leader as anyone may see it (never its token): the body of <c>GET /elections/{name}</c>, a check, and an observer's <c>event: leader</c>.</summary>
public sealed record LeaderResponse(string Name, long Term, string Value, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs)
{
    internal static LeaderResponse From(ElectionLeader leader) =>
        new(leader.Name, leader.Term, leader.Value, leader.AcquiredAt, leader.ExpiresAt, leader.TtlMs);
}

/// <summary>The data of an observer's <c>event: no-leader</c>.</summary>
public sealed record NoLeaderEvent(string Name);

/// <summary>The current leader in a <c>409 election_led</c> (member <c>leader</c>): never its token.</summary>
public sealed record LeaderInWay(long Term, string Value, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt)
{
    internal static LeaderInWay From(ElectionLeader leader) => new(leader.Term, leader.Value, leader.AcquiredAt, leader.ExpiresAt);
}

/// <summary>A page of the elections that have a leader, each as <c>GET /elections/{name}</c> shows it: follow <c>cursor</c> until it is null. Never a token.</summary>
public sealed record ElectionListResponse(IReadOnlyList<LeaderResponse> Elections, string? Cursor);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(CampaignResponse))]
[JsonSerializable(typeof(LeaderResponse))]
[JsonSerializable(typeof(NoLeaderEvent))]
[JsonSerializable(typeof(LeaderInWay))]
[JsonSerializable(typeof(LostEvent))]
[JsonSerializable(typeof(ElectionListResponse))]
internal sealed partial class ElectionJsonContext : JsonSerializerContext;
