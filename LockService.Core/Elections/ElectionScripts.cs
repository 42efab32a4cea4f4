using LockService.Core.Leases;
using LockService.Core.Locks;

namespace LockService.Core.Elections;

/// <summary>
/// The Lua scripts behind an election. A leader holds a lease exactly as a lock's holder does (its fencing token is the
/// term, and its value sits where a lock keeps its owner: a value holds no control characters, so no line break), so the
/// lock scripts serve it unchanged: resign is <see cref="LockScripts.Release"/>, force <see cref="LockScripts.ForceRelease"/>,
/// check and leader <see cref="LockScripts.Inspect"/>, each with an election's keys (<see cref="ElectionKeys"/>) and channel.
/// What an election adds is wrapped around the lock's own script, not copied from it: that script runs as a Lua function
/// and its reply is completed, so the fencing rule (with its retention and the 2^53 bound), the lease records that give
/// reasons, and the checks before the first write or the undo after it are the lock's, and the lock scripts' text (and
/// cost) is exactly what it was. What the wrapper adds after the lock's script has written cannot fail: a SET of a
/// string key the script just read as a lease, and a publish.
/// <list type="bullet">
/// <item>Every change an observer must see is published on <see cref="ElectionKeys.Channel"/>: a new term
/// (<see cref="LeaseNotices.Acquired"/>, which also wakes a retry of an idempotent campaign), a new value
/// (<see cref="ElectionMessages.Proclaimed"/>), no leader after a resign or a force (<see cref="LeaseNotices.Released"/>,
/// from the lock's scripts), a shortened TTL (<see cref="LeaseNotices.Shortened"/>: the observers' expiry timer moves).
/// An expiry publishes nothing; observers time it themselves.</item>
/// </list>
/// </summary>
internal static class ElectionScripts
{
    // KEYS and ARGV as LockScripts.Acquire's, ARGV always all nine: ARGV[5] the value ('' = empty, kept as the lock's
    // owner), ARGV[6] idempotency key ('' = none), ARGV[7] the election's channel, ARGV[8] PUBLISH or SPUBLISH, ARGV[9]
    // hold cap ms ('' = none).
    // Returns as the lock's acquire: {1, term, now ms} elected (both as text), {2, term, token, ms left, expiry ms, value,
    // at, cap} idempotent replay; and when another candidate leads {0, ms left, term, value, at, now ms}, its public state
    // (never its token); a BADDATA error, with nothing written, when a key holds what this service never writes there.
    // A new term is announced (the lock's acquire announces only one with an idempotency key, and then says the same).
    public const string Campaign = LockScripts.Lease + LockScripts.NowMs + $$"""
        local function campaign()
        {{LockScripts.Acquire}}
        end
        local r = campaign()
        if r[1] == 1 then
          if (ARGV[6] or '') == '' then
            redis.call(ARGV[8], ARGV[7], '{{LeaseNotices.Acquired}}')
          end
        elseif r[1] == 0 then
          local l, bad = lease(KEYS[1])
          if bad then
            return baddata(KEYS[1], bad)
          end
          if l then
            return {0, r[2], tonumber(l.fence), l.owner, tonumber(l.at) or false, nowMs()}
          end
        end
        return r
        """;

    // KEYS and ARGV[1..5] as LockScripts.Extend's; ARGV[6] the new value, only when one is given ('' sets it empty).
    // Returns as the lock's extend: {1, term, ttl, value, now ms, at, cap} extended (value as it is now), {0, why} when
    // this token does not lead; a BADDATA error (before any write) when a key holds what this service never writes there.
    // Like a lock's PATCH it always extends; a value that differs from the leader's rewrites the lease with its TTL kept
    // (KEEPTTL: the extend just set it) and is announced; the same value again writes and announces nothing.
    public const string Proclaim = LockScripts.Lease + $$"""
        local function extend()
        {{LockScripts.Extend}}
        end
        local r = extend()
        local value = ARGV[6]
        if r[1] == 1 and value and value ~= (r[4] or '') then
          local l = lease(KEYS[1])
          redis.call('SET', KEYS[1], table.concat({l.token, l.fence, l.ttl, l.at or '', l.cap or '', l.idem or '', l.exp or '', value}, '\n'), 'KEEPTTL')
          redis.call(ARGV[5], ARGV[4], '{{ElectionMessages.Proclaimed}}')
          r[4] = value
        end
        return r
        """;
}

/// <summary>The message an election publishes beyond the lock's (<see cref="LeaseNotices"/>) on its channel.</summary>
internal static class ElectionMessages
{
    /// <summary>The leader set a new value: observers read the state; no waiting candidate or watch has anything to do.</summary>
    public const string Proclaimed = "proclaimed";
}
