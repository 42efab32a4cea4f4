using LockService.Api.Errors;
using LockService.Core.Elections;
using LockService.Core.Leases;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.Elections;

/// <summary>The problems only elections answer, built by the one helper every problem goes through (<see cref="Problems.Create"/>).</summary>
internal static class ElectionProblems
{
    public const string ElectionLed = "election_led";
    public const string NoLeader = "no_leader";
    public const string NotLeader = "not_leader";

    /// <summary>Another candidate leads and the wait ran out: the leader's public state (member <c>leader</c>) and when its term runs out.</summary>
    public static ProblemHttpResult Led(string name, ElectionLeader? leader, long retryAfterMs) => Problems.Create(
        StatusCodes.Status409Conflict,
        ElectionLed,
        "Another candidate leads.",
        leader is null
            ? $"Election '{name}' has a leader; its term runs out in {retryAfterMs} ms unless extended."
            : $"Election '{name}' is led in term {leader.Term}; it runs out in {retryAfterMs} ms unless extended.",
        new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["leader"] = leader is null ? null : LeaderInWay.From(leader),
            ["retryAfterMs"] = retryAfterMs,
        });

    public static ProblemHttpResult NoLeaderNow(string name) => Problems.Create(
        StatusCodes.Status404NotFound,
        NoLeader,
        "The election has no leader.",
        $"Election '{name}' has no leader now.");

    /// <summary>A token that does not lead, with why (the member <c>reason</c>).</summary>
    public static ProblemHttpResult NotLeading(string name, LeaseEnd reason) => Problems.Create(
        StatusCodes.Status404NotFound,
        NotLeader,
        "This token does not lead.",
        reason switch
        {
            LeaseEnd.Released => $"This token does not lead election '{name}': it resigned.",
            LeaseEnd.Forced => $"This token does not lead election '{name}': an operator forced it out.",
            LeaseEnd.Expired => $"This token does not lead election '{name}': its TTL or its hold cap (maxHoldMs) ran out.",
            _ => $"This token does not lead election '{name}', and the service does not remember it (it never led it, or its term ended long ago).",
        },
        new Dictionary<string, object?>(StringComparer.Ordinal) { ["reason"] = Problems.ReasonOf(reason) });

    /// <summary>No room for another observer: on the instance (Elections:MaxObservers), or in the tenant's share of it.</summary>
    public static ProblemHttpResult TooManyObservers(NoRoom refused, ElectionOptions options, LeaseOptions limits) => Problems.Create(
        StatusCodes.Status429TooManyRequests,
        Problems.TooManyRequests,
        "Too many requests.",
        refused == NoRoom.Tenant
            ? $"This tenant already has {limits.TenantShare(options.MaxObservers)} observers on this instance, its share of Elections:MaxObservers (Locks:MaxWaitersPerTenant). Retry later, or ask GET without Accept: text/event-stream."
            : $"This instance already has {options.MaxObservers} observers (Elections:MaxObservers). Retry later, or ask GET without Accept: text/event-stream.");
}
