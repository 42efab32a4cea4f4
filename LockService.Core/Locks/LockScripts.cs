using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace LockService.Core.Locks;

/// <summary>
/// The Lua scripts behind every lock operation. Each runs atomically in Redis, so no operation depends on
/// a client's clock or on a read-then-write race. Keys come only through KEYS and values only through ARGV.
/// A lock is a hash (token, fence, ttl; owner when given; idem and exp with an idempotency key) that expires with
/// the lock; its fencing counter is a separate key that never expires, so fencing tokens keep increasing across
/// expiry and release.
/// </summary>
internal static class LockScripts
{
    private static readonly ConcurrentDictionary<string, string> Sha1s = new(StringComparer.Ordinal);

    /// <summary>The script's SHA1, as EVALSHA names it (Redis's choice of hash, not a security measure).</summary>
    public static string Sha1Of(string script) =>
        Sha1s.GetOrAdd(script, static s => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(s))));

    // KEYS[1] lock hash, KEYS[2] fencing counter
    // ARGV[1] token, ARGV[2] ttl ms; then, only when there is an owner or an idempotency key (the common acquire
    // sends two arguments): ARGV[3] owner ('' = none), ARGV[4] idempotency key ('' = none), ARGV[5] expiresAt
    // (unix ms, informational, kept for replays), ARGV[6] notify channel, ARGV[7] PUBLISH or SPUBLISH
    // Returns {1, fence} acquired; {2, fence, token, ttl, exp, owner} idempotent replay; {0, pttl} held.
    // An acquire that carries an idempotency key announces itself, so a retry of it waiting elsewhere
    // replays at once instead of waiting for the release of its own lock.
    public const string Acquire = """
        local owner = ARGV[3] or ''
        local idem = ARGV[4] or ''
        local pttl = redis.call('PTTL', KEYS[1])
        if pttl == -2 then
          local fence = redis.call('INCR', KEYS[2])
          redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fence', fence, 'ttl', ARGV[2])
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          if owner ~= '' then
            redis.call('HSET', KEYS[1], 'owner', owner)
          end
          if idem ~= '' then
            redis.call('HSET', KEYS[1], 'idem', idem, 'exp', ARGV[5])
            redis.call(ARGV[7], ARGV[6], 'acquired')
          end
          return {1, fence}
        end
        if idem ~= '' then
          local h = redis.call('HMGET', KEYS[1], 'idem', 'fence', 'token', 'ttl', 'exp', 'owner')
          if h[1] == idem then
            return {2, tonumber(h[2]), h[3], tonumber(h[4]), tonumber(h[5]), h[6]}
          end
        end
        return {0, pttl}
        """;

    // KEYS[1] lock hash
    // ARGV[1] token, ARGV[2] notify channel, ARGV[3] PUBLISH or SPUBLISH
    // Returns 1 released (and waiters notified), 0 when this token does not hold the lock.
    public const string Release = """
        if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
          redis.call('DEL', KEYS[1])
          redis.call(ARGV[3], ARGV[2], 'released')
          return 1
        end
        return 0
        """;

    // KEYS[1] lock hash
    // ARGV[1] token, ARGV[2] new ttl ms ('' = the ttl the lock was acquired with)
    // Returns {fence, ttl, owner} extended, or nil when this token does not hold the lock.
    // PEXPIRE on a missing key does nothing, and the token check fails first anyway: an expired lock
    // is never brought back.
    public const string Extend = """
        local h = redis.call('HMGET', KEYS[1], 'token', 'ttl', 'fence', 'owner')
        if h[1] ~= ARGV[1] then
          return false
        end
        local ttl = ARGV[2]
        if ttl == '' then
          ttl = h[2]
        end
        redis.call('PEXPIRE', KEYS[1], ttl)
        return {tonumber(h[3]), tonumber(ttl), h[4]}
        """;

    // KEYS[1] lock hash
    // ARGV[1] token to check ('' = any holder)
    // Returns {fence, owner, pttl} while held (by that token, when given), else nil. Never returns the token.
    public const string Inspect = """
        local h = redis.call('HMGET', KEYS[1], 'token', 'fence', 'owner')
        if not h[1] then
          return false
        end
        if ARGV[1] ~= '' and h[1] ~= ARGV[1] then
          return false
        end
        local pttl = redis.call('PTTL', KEYS[1])
        if pttl < 0 then
          return false
        end
        return {tonumber(h[2]), h[3], pttl}
        """;
}
