using LockService.Core.Leases;
using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.Elections;

/// <summary>The leader of an election as anyone may see it: never its token.</summary>
/// <param name="Name">The election's name.</param>
/// <param name="Term">The leader's term: its fencing token, strictly increasing per name.</param>
/// <param name="Value">What the leader tells its followers (empty when it said nothing).</param>
/// <param name="AcquiredAt">When this term began, from Redis's clock.</param>
/// <param name="ExpiresAt">When the leadership ends unless extended, from Redis's clock.</param>
/// <param name="TtlMs">What was left of its TTL when it was read.</param>
public sealed record ElectionLeader(string Name, long Term, string Value, DateTimeOffset AcquiredAt, DateTimeOffset ExpiresAt, long TtlMs) : ILeaseInfo;

/// <summary>A leadership as its holder sees it.</summary>
/// <param name="Name">The election's name.</param>
/// <param name="Token">The secret that proves leadership.</param>
/// <param name="Term">The term: its fencing token.</param>
/// <param name="Value">What the leader tells its followers.</param>
/// <param name="TtlMs">The TTL set by this campaign or extend.</param>
/// <param name="ExpiresAt">Informational expiry, from Redis's clock.</param>
/// <param name="AcquiredAt">When the term began, from Redis's clock.</param>
/// <param name="MaxHoldMs">The hold cap, or null without one.</param>
public sealed record ElectionLease(
    string Name, string Token, long Term, string Value, long TtlMs, DateTimeOffset ExpiresAt, DateTimeOffset AcquiredAt, long? MaxHoldMs) : IKeptLease;

/// <summary>What an operator's force found.</summary>
/// <param name="Forced">True when a leader was forced out.</param>
/// <param name="Term">The term forced out.</param>
/// <param name="Value">Its value.</param>
/// <param name="HeldMs">How long it had led.</param>
public readonly record struct ForceReply(bool Forced, long Term, string Value, long HeldMs);

/// <summary>
/// The one place where the replies of an election's scripts (<see cref="ElectionScripts"/>, and the lock scripts an
/// election runs) are read, each into a record with named fields. Times are Redis's (ms from TIME inside the script).
/// </summary>
internal static class ElectionReplies
{
    /// <summary>
    /// <see cref="ElectionScripts.Campaign"/>: <c>{1, term, now}</c>, <c>{2, term, token, left, expiry, value, at, cap}</c>,
    /// <c>{0, left, term, value, at, now}</c> (the leader in the way).
    /// </summary>
    public static LeaseAttempt<ElectionLease, ElectionLeader?> Campaign(string name, string token, CampaignRequest request, RedisScriptRunner.Written written)
    {
        var v = (RedisResult[])written.Result!;
        var terms = request.Terms;
        switch ((long)v[0])
        {
            case 1:
                // If this leader vanishes, its TTL is when the head of a queue must look again.
                var at = (long)v[2];
                var elected = new ElectionLease(name, token, (long)v[1], request.Value, terms.TtlMs, Ms(at + terms.TtlMs), Ms(at), terms.MaxHoldMs);
                return LeaseAttempt<ElectionLease, ElectionLeader?>.Granted(elected, terms.TtlMs, -1, written);
            case 2:
                var (acquiredAt, maxHoldMs) = Hold(v[6], v[7]);
                var replay = new ElectionLease(name, (string)v[2]!, (long)v[1], ValueOf(v[5]), (long)v[3], Ms((long)v[4]), acquiredAt, maxHoldMs);
                return LeaseAttempt<ElectionLease, ElectionLeader?>.Replayed(replay, replay.TtlMs);
            default:
                var left = (long)v[1];
                var leader = v.Length < 6 ? null : new ElectionLeader(name, (long)v[2], ValueOf(v[3]), Hold(v[4], v[4]).AcquiredAt, Ms((long)v[5] + left), left);
                return LeaseAttempt<ElectionLease, ElectionLeader?>.Taken(left, leader);
        }
    }

    /// <summary><see cref="ElectionScripts.Proclaim"/>: <c>{1, term, ttl, value, now, at, cap}</c> or <c>{0, why}</c>.</summary>
    public static ExtendResult<ElectionLease> Proclaim(RedisResult result, string name, string token)
    {
        var v = (RedisResult[])result!;
        if ((long)v[0] != 1)
        {
            return new ExtendResult<ElectionLease>(null, LeaseScripts.EndOf((long)v[1]));
        }

        var ttl = (long)v[2];
        var (acquiredAt, maxHoldMs) = Hold(v[5], v[6]);
        return new ExtendResult<ElectionLease>(new ElectionLease(name, token, (long)v[1], ValueOf(v[3]), ttl, Ms((long)v[4] + ttl), acquiredAt, maxHoldMs), null);
    }

    /// <summary><see cref="LockScripts.Release"/>: when the term began (at least 0) when resigned, minus why not otherwise.</summary>
    public static (bool Resigned, LeaseEnd? Ended, long AcquiredAtMs) Resign(RedisResult result)
    {
        var answer = (long)result;
        return answer >= 0 ? (true, null, answer) : (false, LeaseScripts.EndOf(-answer), 0);
    }

    /// <summary><see cref="LockScripts.Inspect"/>: <c>{1, term, value, left, now, at, cap}</c>, <c>{0, why}</c>, or <c>{0, 0}</c> when nobody leads.</summary>
    public static CheckResult<ElectionLeader> Look(RedisResult result, string name)
    {
        var v = (RedisResult[])result!;
        if ((long)v[0] != 1)
        {
            var why = (long)v[1];
            return new CheckResult<ElectionLeader>(null, why == 0 ? null : LeaseScripts.EndOf(why));
        }

        var left = (long)v[3];
        return new CheckResult<ElectionLeader>(new ElectionLeader(name, (long)v[1], ValueOf(v[2]), Hold(v[5], v[6]).AcquiredAt, Ms((long)v[4] + left), left), null);
    }

    /// <summary><see cref="LockScripts.ForceRelease"/>: <c>{1, term, value, held ms}</c>, or <c>{0}</c> when nobody leads.</summary>
    public static ForceReply Force(RedisResult result)
    {
        var v = (RedisResult[])result!;
        return (long)v[0] == 1 ? new ForceReply(true, (long)v[1], ValueOf(v[2]), (long)v[3]) : default;
    }

    // A value is kept where a lock keeps its owner, which the scripts return as false (a null reply) when empty.
    private static string ValueOf(RedisResult value) => (string?)value ?? string.Empty;

    private static (DateTimeOffset AcquiredAt, long? MaxHoldMs) Hold(RedisResult at, RedisResult cap)
    {
        var acquiredMs = at.IsNull ? 0 : (long)at;
        return (Ms(acquiredMs), cap.IsNull ? null : (long)cap - acquiredMs);
    }

    private static DateTimeOffset Ms(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);
}
