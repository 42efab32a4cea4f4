using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace LockService.Core.Locks;

/// <summary>
/// The Lua scripts behind every lock operation. Each runs atomically in Redis, so no operation depends on
/// a client's clock or on a read-then-write race. Keys come only through KEYS and values only through ARGV.
/// A lock is a hash (token, fence, ttl; owner when given; idem and exp with an idempotency key) that expires with
/// the lock. Its last fencing token is a separate key that outlives it by <see cref="LockOptions.FenceRetentionMs"/>
/// after every use, so fencing tokens keep increasing across expiry and release, and an unused name leaves nothing.
/// Times come from Redis's TIME, never from an instance's clock.
/// </summary>
/// <remarks>
/// Fencing tokens are near 2^51 (microseconds since 1970). Lua's <c>tostring</c> and <c>..</c> print numbers
/// with <c>%.14g</c>, which would lose their last digits, so the scripts compare them as numbers, store them
/// through <c>string.format('%d')</c> (a 64-bit integer conversion) and return them as numbers (integer replies).
/// </remarks>
internal static class LockScripts
{
    private static readonly ConcurrentDictionary<string, string> Sha1s = new(StringComparer.Ordinal);

    /// <summary>The script's SHA1, as EVALSHA names it (Redis's choice of hash, not a security measure).</summary>
    public static string Sha1Of(string script) =>
        Sha1s.GetOrAdd(script, static s => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(s))));

    // KEYS[1] lock hash, KEYS[2] last fencing token
    // ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fence retention ms; then, only when there is an owner or an idempotency
    // key (the common acquire sends three arguments): ARGV[4] owner ('' = none), ARGV[5] idempotency key ('' = none),
    // ARGV[6] notify channel, ARGV[7] PUBLISH or SPUBLISH
    // Returns {1, fence, now ms} acquired; {2, fence, token, ttl, exp, owner} idempotent replay; {0, pttl} held.
    // A new fencing token is max(Redis time in microseconds, the key's last token + 1): it keeps increasing when
    // Redis lost the last one (a restart without persistence, a failover), and needs no key that lives forever.
    // An acquire that carries an idempotency key announces itself, so a retry of it waiting elsewhere
    // replays at once instead of waiting for the release of its own lock.
    public const string Acquire = $$"""
        local pttl = redis.call('PTTL', KEYS[1])
        if pttl == -2 then
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
          local fence = now
          local last = tonumber(redis.call('GET', KEYS[2]))
          if last and last >= now then
            fence = last + 1
          end
          local f = string.format('%d', fence)
          redis.call('SET', KEYS[2], f, 'PX', ARGV[3])
          redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fence', f, 'ttl', ARGV[2])
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          local nowMs = math.floor(now / 1000)
          local owner = ARGV[4] or ''
          local idem = ARGV[5] or ''
          if owner ~= '' then
            redis.call('HSET', KEYS[1], 'owner', owner)
          end
          if idem ~= '' then
            redis.call('HSET', KEYS[1], 'idem', idem, 'exp', string.format('%d', nowMs + tonumber(ARGV[2])))
            redis.call(ARGV[7], ARGV[6], '{{LockMessages.Acquired}}')
          end
          return {1, fence, nowMs}
        end
        local idem = ARGV[5] or ''
        if idem ~= '' then
          local h = redis.call('HMGET', KEYS[1], 'idem', 'fence', 'token', 'ttl', 'exp', 'owner')
          if h[1] == idem then
            return {2, tonumber(h[2]), h[3], tonumber(h[4]), tonumber(h[5]), h[6]}
          end
        end
        return {0, pttl}
        """;

    // KEYS[1] lock hash, KEYS[2] last fencing token
    // ARGV[1] token, ARGV[2] notify channel, ARGV[3] PUBLISH or SPUBLISH, ARGV[4] fence retention ms
    // Returns 1 released (and waiters notified), 0 when this token does not hold the lock.
    public const string Release = $$"""
        if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
          redis.call('DEL', KEYS[1])
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
          redis.call(ARGV[3], ARGV[2], '{{LockMessages.Released}}')
          return 1
        end
        return 0
        """;

    // KEYS[1] lock hash, KEYS[2] last fencing token
    // ARGV[1] token, ARGV[2] new ttl ms ('' = the ttl the lock was acquired with), ARGV[3] fence retention ms,
    // ARGV[4] notify channel, ARGV[5] PUBLISH or SPUBLISH
    // Returns {fence, ttl, owner, now ms} extended, or nil when this token does not hold the lock.
    // PEXPIRE on a missing key does nothing, and the token check fails first anyway: an expired lock
    // is never brought back. A TTL made shorter is announced, so that every instance's waiters re-arm their
    // expiry timers to the new expiry instead of sleeping until the old one (a longer one needs nothing: the timer
    // fires early, the head finds the lock held and re-arms to what is left).
    public const string Extend = $$"""
        local h = redis.call('HMGET', KEYS[1], 'token', 'ttl', 'fence', 'owner')
        if h[1] ~= ARGV[1] then
          return false
        end
        local ttl = ARGV[2]
        if ttl == '' then
          ttl = h[2]
        end
        local before = redis.call('PTTL', KEYS[1])
        redis.call('PEXPIRE', KEYS[1], ttl)
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        if tonumber(ttl) < before then
          redis.call(ARGV[5], ARGV[4], '{{LockMessages.Shortened}}')
        end
        local t = redis.call('TIME')
        return {tonumber(h[3]), tonumber(ttl), h[4], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
        """;

    // KEYS[1] lock hash
    // ARGV[1] token to check ('' = any holder)
    // Returns {fence, owner, pttl, now ms} while held (by that token, when given), else nil. Never returns the token.
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
        local t = redis.call('TIME')
        return {tonumber(h[2]), h[3], pttl, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
        """;
}

/// <summary>The messages the scripts publish on a lock's channel and the waiting queues read.</summary>
internal static class LockMessages
{
    /// <summary>The lock was released: the head of each instance's queue tries at once.</summary>
    public const string Released = "released";

    /// <summary>An acquire with an idempotency key succeeded: a retry of it waiting elsewhere replays.</summary>
    public const string Acquired = "acquired";

    /// <summary>The holder shortened its TTL: the head tries at once and re-arms its expiry timer to the new TTL.</summary>
    public const string Shortened = "shortened";
}
