using System.Buffers.Text;
using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.Semaphores;

/// <summary>
/// The Lua scripts behind every semaphore operation, one per operation, each atomic in Redis with Redis's own clock.
/// Every script gets the same five keys, all under the semaphore's hash tag (<see cref="SemaphoreKeys"/>):
/// <list type="number">
/// <item><c>sem:{k}</c>, a sorted set: each held permit's token by its expiry (Redis ms). Its size is the count held.</item>
/// <item><c>sem:{k}:permits</c>, a hash: token → <c>"slot fence acquiredAt cap ttl limit flags"</c> (cap 0: no hold cap;
/// flags 1: an owner in field <c>o:token</c>, 2: an idempotency key in <c>i:token</c>, found again through <c>k:key</c>).</item>
/// <item><c>sem:{k}:slots</c>, a hash: slot → token of the permit holding it.</item>
/// <item><c>sem:{k}:fence</c>, a hash: slot → the last fencing token issued for it, kept <see cref="LeaseOptions.FenceRetentionMs"/>
/// after the semaphore's last acquire, extend or release.</item>
/// <item><c>sem:{k}:leases</c>, the lease records, as a lock's (token by <c>end ms * 4 + state</c>): why a token stopped
/// holding. Written "held" with the expected end at acquire and extend, so a permit that expires needs no write.</item>
/// </list>
/// The first three expire with the latest permit; nothing is left without a TTL. Every script first drops the permits whose
/// expiry passed by Redis's clock, so an expired permit is never counted, released or extended, and announces the places
/// that frees. ARGV[1] is the notice channel, ARGV[2] PUBLISH or SPUBLISH, for every script.
/// <para>Before that, every script looks at the type of each of its five keys (five TYPE commands): one of another type
/// (written by hand) is a <see cref="LeaseScripts.BadData"/> error before anything is written, since these scripts write
/// several keys and a command refused half-way would leave a permit to nobody. So is a permit record that does not parse
/// where a permit is looked up (an expired one that does not parse is dropped), and a slot's last fencing token that no
/// token below 2^53 can exceed; a fencing value that is not a number, or below the clock, counts as none, as for locks.</para>
/// </summary>
/// <remarks>
/// Numbers go to Redis through <c>string.format('%d')</c> and come back as integer replies, as in the lock's scripts;
/// an optional reply field is <c>false</c>, never nil (a reply array ends at its first nil).
/// </remarks>
internal static class SemaphoreScripts
{
    // Shared by the scripts below: Redis's clock, permit records, the purge of expired permits, notices, lease records.
    private const string Common = $$"""
        local function int(x)
          return string.format('%d', x)
        end
        local function clock()
          local t = redis.call('TIME')
          local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
          return micros, math.floor(micros / 1000)
        end
        local function parse(rec)
          local s, f, a, c, t, l, o = string.match(rec, '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
          return tonumber(s), tonumber(f), tonumber(a), tonumber(c), tonumber(t), tonumber(l), tonumber(o)
        end
        local function baddata(key, what)
          return redis.error_reply('{{LeaseScripts.BadData}} ' .. key .. ' ' .. what)
        end
        local function badrecord()
          return baddata(KEYS[2], 'holds a permit record this service did not write (a value written by hand)')
        end
        local function ownerOf(token)
          return redis.call('HGET', KEYS[2], 'o:' .. token) or false
        end
        local function forget(token, rec)
          local slot, _, _, _, _, _, flags = parse(rec)
          if slot and redis.call('HGET', KEYS[3], int(slot)) == token then
            redis.call('HDEL', KEYS[3], int(slot))
          end
          local idem = flags and flags >= 2 and redis.call('HGET', KEYS[2], 'i:' .. token)
          if idem then
            redis.call('HDEL', KEYS[2], 'k:' .. idem)
          end
          redis.call('HDEL', KEYS[2], token, 'o:' .. token, 'i:' .. token)
          redis.call('ZREM', KEYS[1], token)
        end
        local function purge(now)
          local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now))
          for _, token in ipairs(gone) do
            local rec = redis.call('HGET', KEYS[2], token)
            if rec then
              forget(token, rec)
            else
              redis.call('ZREM', KEYS[1], token)
            end
          end
          return #gone
        end
        local function announce(freed)
          if freed > 0 then
            redis.call(ARGV[2], ARGV[1], '{{SemaphoreMessages.Freed}} ' .. int(freed) .. ' ' .. int(redis.call('ZCARD', KEYS[1])))
          end
        end
        local function lookup(token, quiet)
          local _, now = clock()
          local freed = purge(now)
          if not quiet then
            announce(freed)
          end
          local expires = redis.call('ZSCORE', KEYS[1], token)
          local rec = expires and redis.call('HGET', KEYS[2], token)
          return now, rec, tonumber(expires), freed, rec and not parse(rec)
        end
        local function remember(token, endMs, state, keepMs)
          redis.call('ZADD', KEYS[5], int(endMs * 4 + state), token)
          local keep = redis.call('ZCARD', KEYS[1]) + {{LeaseScripts.LeaseRecords}}
          if redis.call('ZCARD', KEYS[5]) > keep then
            redis.call('ZREMRANGEBYRANK', KEYS[5], 0, int(-keep - 1))
          end
          if redis.call('PTTL', KEYS[5]) < keepMs then
            redis.call('PEXPIRE', KEYS[5], int(keepMs))
          end
        end
        {{LeaseScripts.Ended}}
        local function outlive(ttl)
          local left = redis.call('PTTL', KEYS[1])
          if left < ttl then
            left = ttl
          end
          for i = 1, 3 do
            redis.call('PEXPIRE', KEYS[i], int(left))
          end
        end
        local kinds = {'zset', 'hash', 'hash', 'hash', 'zset'}
        for i = 1, 5 do
          local kind = redis.call('TYPE', KEYS[i]).ok
          if kind ~= 'none' and kind ~= kinds[i] then
            return baddata(KEYS[i], '{{LeaseScripts.WrongType}}')
          end
        end

        """;

    // ARGV[3] fence retention ms, ARGV[4] token, ARGV[5] ttl ms, ARGV[6] limit; then, only when there is an owner, an
    // idempotency key or a hold cap: ARGV[7] owner ('' = none), ARGV[8] idempotency key ('' = none), ARGV[9] hold cap ms ('' = none)
    // Returns {1, slot, fence, now ms, earliest expiry in ms from now, held now} acquired;
    // {2, token, slot, fence, ms left, at, cap, limit, owner, expiry ms} idempotent replay (the permit as it stands now);
    // {0, earliest expiry in ms from now, held} when at least ARGV[6] permits are held.
    // The caller's own limit decides (callers that disagree each get a defined answer); the slot is the lowest free one,
    // below that limit since fewer than it are held (found in O(held)); the fencing token is per slot:
    // max(Redis time in microseconds, the slot's last + 1), as a lock's is per key.
    public const string Acquire = Common + $$"""
        local micros, now = clock()
        announce(purge(now))
        local idem = ARGV[8] or ''
        if idem ~= '' then
          local token = redis.call('HGET', KEYS[2], 'k:' .. idem)
          local expires = token and redis.call('ZSCORE', KEYS[1], token)
          local rec = expires and redis.call('HGET', KEYS[2], token)
          if rec then
            local slot, fence, at, cap, _, limit = parse(rec)
            if not slot then
              return badrecord()
            end
            return {2, token, slot, fence, tonumber(expires) - now, at, cap, limit, ownerOf(token), tonumber(expires)}
          end
        end
        local held = redis.call('ZCARD', KEYS[1])
        local limit = tonumber(ARGV[6])
        if held >= limit then
          local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
          return {0, tonumber(first[2]) - now, held}
        end
        local slot = 0
        if held > 0 then
          local taken = {}
          for _, s in ipairs(redis.call('HKEYS', KEYS[3])) do
            local n = tonumber(s)
            if n then
              taken[n] = true
            end
          end
          while taken[slot] do
            slot = slot + 1
          end
        end
        local fence = micros
        local last = tonumber(redis.call('HGET', KEYS[4], int(slot)))
        if last and last >= fence then
          if last > {{LeaseScripts.MaxLastFence}} then
            return baddata(KEYS[4], 'field ' .. int(slot) .. ' {{LeaseScripts.FenceTooHigh}}')
          end
          fence = math.floor(last) + 1
        end
        if held == 0 then
          redis.call('DEL', KEYS[2], KEYS[3])
        end
        redis.call('HSET', KEYS[4], int(slot), int(fence))
        redis.call('PEXPIRE', KEYS[4], ARGV[3])
        local token = ARGV[4]
        local ttl = tonumber(ARGV[5])
        local cap = 0
        if (ARGV[9] or '') ~= '' then
          cap = now + tonumber(ARGV[9])
        end
        local flags = 0
        if (ARGV[7] or '') ~= '' then
          flags = 1
          redis.call('HSET', KEYS[2], 'o:' .. token, ARGV[7])
        end
        if idem ~= '' then
          flags = flags + 2
          redis.call('HSET', KEYS[2], 'i:' .. token, idem, 'k:' .. idem, token)
          redis.call(ARGV[2], ARGV[1], '{{LeaseNotices.Acquired}}')
        end
        redis.call('ZADD', KEYS[1], int(now + ttl), token)
        redis.call('HSET', KEYS[2], token, table.concat({int(slot), int(fence), int(now), int(cap), int(ttl), int(limit), int(flags)}, ' '))
        redis.call('HSET', KEYS[3], int(slot), token)
        outlive(ttl)
        remember(token, now + ttl, {{LeaseScripts.HeldState}}, ttl + {{LeaseScripts.LeaseMemoryMs}})
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        return {1, slot, fence, now, tonumber(first[2]) - now, held + 1}
        """;

    // ARGV[3] fence retention ms, ARGV[4] token
    // Returns {1, held ms} released (and the place announced), {0, why} when this token holds no permit.
    public const string Release = Common + $$"""
        local now, rec, _, freed, broken = lookup(ARGV[4], true)
        if not rec or broken then
          announce(freed)
          return broken and badrecord() or {0, ended(KEYS[5], ARGV[4])}
        end
        local _, _, at = parse(rec)
        forget(ARGV[4], rec)
        redis.call('PEXPIRE', KEYS[4], ARGV[3])
        remember(ARGV[4], now, {{LeaseScripts.ReleasedState}}, {{LeaseScripts.LeaseMemoryMs}})
        announce(freed + 1)
        return {1, now - at}
        """;

    // ARGV[3] fence retention ms, ARGV[4] slot
    // Returns {1, fence, owner, held ms, limit} released whoever held the slot, {0} when no permit holds it. The holder's
    // token is never returned: its lease record says "forced", which its next check, extend, release or watch reports.
    public const string ForceRelease = Common + $$"""
        local _, now = clock()
        local freed = purge(now)
        local token = redis.call('HGET', KEYS[3], ARGV[4])
        local rec = token and redis.call('HGET', KEYS[2], token)
        if not rec or not parse(rec) then
          announce(freed)
          return rec and badrecord() or {0}
        end
        local _, fence, at, _, _, limit = parse(rec)
        local owner = ownerOf(token)
        forget(token, rec)
        redis.call('PEXPIRE', KEYS[4], ARGV[3])
        remember(token, now, {{LeaseScripts.ForcedState}}, {{LeaseScripts.LeaseMemoryMs}})
        announce(freed + 1)
        return {1, fence, owner, now - at, limit}
        """;

    // ARGV[3] fence retention ms, ARGV[4] token, ARGV[5] new ttl ms ('' = the ttl the permit was acquired with)
    // Returns {1, slot, fence, ttl, now ms, at, cap, limit, owner} extended, {0, why} when this token holds no permit.
    // An expired permit is gone before the token is looked up: it is never brought back. With a hold cap the TTL is cut to
    // what is left of it. A permit whose expiry comes sooner than before is announced ("shortened"): waiters re-arm their
    // expiry timers to it.
    public const string Extend = Common + $$"""
        local now, rec, expires, _, broken = lookup(ARGV[4])
        if broken then
          return badrecord()
        end
        if not rec then
          return {0, ended(KEYS[5], ARGV[4])}
        end
        local slot, fence, at, cap, ttl, limit = parse(rec)
        if ARGV[5] ~= '' then
          ttl = tonumber(ARGV[5])
        end
        if cap > 0 then
          local left = cap - now
          if left <= 0 then
            return {0, {{LeaseScripts.ExpiredState}}}
          end
          if left < ttl then
            ttl = left
          end
        end
        redis.call('ZADD', KEYS[1], 'XX', int(now + ttl), ARGV[4])
        outlive(ttl)
        redis.call('PEXPIRE', KEYS[4], ARGV[3])
        remember(ARGV[4], now + ttl, {{LeaseScripts.HeldState}}, ttl + {{LeaseScripts.LeaseMemoryMs}})
        if now + ttl < expires then
          redis.call(ARGV[2], ARGV[1], '{{LeaseNotices.Shortened}}')
        end
        return {1, slot, fence, ttl, now, at, cap, limit, ownerOf(ARGV[4])}
        """;

    // ARGV[3] token
    // Returns {1, slot, fence, ms left, now ms, at, cap, limit, owner} while this token holds a permit, else {0, why}.
    public const string Check = Common + """
        local now, rec, expires, _, broken = lookup(ARGV[3])
        if broken then
          return badrecord()
        end
        if rec then
          local slot, fence, at, cap, _, limit = parse(rec)
          return {1, slot, fence, expires - now, now, at, cap, limit, ownerOf(ARGV[3])}
        end
        return {0, ended(KEYS[5], ARGV[3])}
        """;

    // ARGV[3] most permits to describe
    // Returns {held, now ms, then per permit: slot, fence, expires, at, cap, limit, owner}, for the permits that expire
    // first (at most ARGV[3] of them). Never a token.
    public const string Inspect = Common + """
        local _, now = clock()
        announce(purge(now))
        local reply = {redis.call('ZCARD', KEYS[1]), now}
        local permits = redis.call('ZRANGE', KEYS[1], 0, int(tonumber(ARGV[3]) - 1), 'WITHSCORES')
        for i = 1, #permits, 2 do
          local rec = redis.call('HGET', KEYS[2], permits[i])
          if rec then
            local slot, fence, at, cap, _, limit = parse(rec)
            if not slot then
              return badrecord()
            end
            for _, v in ipairs({slot, fence, tonumber(permits[i + 1]), at, cap, limit}) do
              reply[#reply + 1] = v
            end
            reply[#reply + 1] = ownerOf(permits[i])
          end
        end
        return reply
        """;
}

/// <summary>The notice the semaphore scripts publish when places free up (besides <see cref="LeaseNotices"/>' acquired and shortened).</summary>
internal static class SemaphoreMessages
{
    /// <summary>
    /// <c>freed N H</c>: N places were freed (released, force-released, expired), and H permits are held now. Each instance
    /// wakes up to N of its waiters at the front (none ahead with a limit as high) whose limit is above H.
    /// </summary>
    public const string Freed = "freed";

    private static readonly RedisValue Prefix = Freed + " ";

    /// <summary>Reads a <see cref="Freed"/> notice; false for any other message.</summary>
    public static bool TryParseFreed(RedisValue message, out int places, out int held)
    {
        places = held = 0;
        if (!message.StartsWith(Prefix))
        {
            return false;
        }

        ReadOnlySpan<byte> text = (byte[])message!;
        text = text[Freed.Length..].TrimStart((byte)' ');
        var space = text.IndexOf((byte)' ');
        return space > 0 && Utf8Parser.TryParse(text[..space], out places, out var used) && used == space
            && Utf8Parser.TryParse(text[(space + 1)..], out held, out used) && used == text.Length - space - 1;
    }
}
