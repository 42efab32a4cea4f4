using LockService.Core.Leases;

namespace LockService.Core.RwLocks;

/// <summary>
/// The Lua scripts behind every read/write lock operation, one per operation, each atomic in Redis with Redis's own clock.
/// Every script gets the same five keys, all under the name's hash tag (<see cref="RwLockKeys"/>):
/// <list type="number">
/// <item><c>rw:{k}</c>, a sorted set: each held lease's token by its expiry (Redis ms). The key operators' listings find.</item>
/// <item><c>rw:{k}:holders</c>, a hash: token → the lease's record, one field per line: mode (<c>r</c> or <c>w</c>), fence,
/// acquired at (Redis ms), cap (the hold deadline, 0: none), ttl (as acquired), idempotency key, owner (an absent one empty;
/// neither holds a control character, so a line break cannot occur inside a field). One field per lease, so a release
/// deletes one field; an idempotency key is found again through the field <c>k:key</c>, which names the token.</item>
/// <item><c>rw:{k}:fence</c>, a string: the last fencing token of the name, one sequence for both modes, kept
/// <see cref="LeaseOptions.FenceRetentionMs"/> past the expiry of the name's latest lease, as a lock's is.</item>
/// <item><c>rw:{k}:leases</c>, the lease records, as a semaphore's (token by <c>end ms * 4 + state</c>): why a token stopped
/// holding. Written "held" with the expected end at acquire and extend, so a lease that expires needs no write.</item>
/// <item><c>rw:{k}:writers</c>, a sorted set: each waiting writer's mark by its expiry (Redis ms). A mark is a short lease that
/// the waiting request's instance renews and removes when the request ends, so a dead instance's mark lapses by itself.</item>
/// </list>
/// Every lease has the same mode as every other held one: a write lease is granted only when nobody holds, a read lease only
/// when no writer holds and no live mark exists (writer preference), so the first holder's record says the mode. A mark
/// whose expiry passed by Redis's clock counts for nothing, whether or not a script has dropped it yet; a lease likewise,
/// and every script that looks at the leases first drops the expired ones. ARGV[1] is the notice channel, ARGV[2] PUBLISH
/// or SPUBLISH, for every script.
/// <para>Each script first looks at the type of every key it touches (one TYPE each): one of another type (written by hand)
/// is a <see cref="LeaseScripts.BadData"/> error before anything is written, since these scripts write several keys and a
/// command refused half-way would leave a lease to nobody. So is a lease record that does not parse where a lease is read
/// (an expired one is dropped whatever it holds), and a last fencing token that no token below 2^53 can exceed. The only
/// writes before such an error are the drops of expired leases and marks, which hand nothing to anyone.</para>
/// <para>Whatever frees a place (a release, a force-release, an expiry found, a mark removed) publishes
/// <see cref="RwLockMessages.Freed"/> with what was freed and the state after it, for the wake policy to choose whom to
/// wake, once per script, after its last change.</para>
/// </summary>
/// <remarks>
/// Numbers go to Redis through <c>string.format('%d')</c> and come back as integer replies, as in the lock's scripts;
/// an optional reply field is <c>false</c>, never nil (a reply array ends at its first nil).
/// </remarks>
internal static class RwLockScripts
{
    /// <summary>The mode letter of a read lease, in records and replies.</summary>
    public const string Read = "r";

    /// <summary>The mode letter of a write lease, in records and replies.</summary>
    public const string Write = "w";

    /// <summary>What <see cref="LeaseScripts.BadData"/> says of a lease record that does not parse.</summary>
    public const string BadRecord = "holds a lease record this service did not write (a value written by hand)";

    // Shared by the scripts below. `freed` and `freedMode` collect what the script freed, and answer() publishes it once, with
    // the state as the script leaves it, so a waiter woken by the notice never finds a state older than the notice says.
    private const string Common = $$"""
        local function int(x)
          return string.format('%d', x)
        end
        local function baddata(key, what)
          return redis.error_reply('{{LeaseScripts.BadData}} ' .. key .. ' ' .. what)
        end
        local kinds = {'zset', 'hash', 'string', 'zset', 'zset'}
        local function wrongType(touched)
          for _, i in ipairs(touched) do
            local kind = redis.call('TYPE', KEYS[i]).ok
            if kind ~= 'none' and kind ~= kinds[i] then
              return baddata(KEYS[i], '{{LeaseScripts.WrongType}}')
            end
          end
        end
        local function clock()
          local t = redis.call('TIME')
          local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
          return micros, math.floor(micros / 1000)
        end
        local function parse(rec, token)
          local m, f, a, c, t, idem, owner = string.match(rec, '^([rw])\n(%d+)\n(%d+)\n(%d+)\n(%d+)\n([^\n]*)\n(.*)$')
          if not m or #f > 16 or #a > 15 or #c > 15 or #t > 15 then
            return nil
          end
          f = tonumber(f)
          if f < 1 or f > {{LeaseScripts.MaxLastFence}} + 1 then
            return nil
          end
          return {token = token, mode = m, fence = f, at = tonumber(a), cap = tonumber(c), ttl = tonumber(t), idem = idem,
            owner = owner ~= '' and owner}
        end
        local function forget(l)
          if l.idem and l.idem ~= '' then
            redis.call('HDEL', KEYS[2], l.token, 'k:' .. l.idem)
          else
            redis.call('HDEL', KEYS[2], l.token)
          end
          redis.call('ZREM', KEYS[1], l.token)
        end
        local freed, freedMode = 0, nil
        -- How many hold, and in which mode: the first holder's, since all share one. A holder whose record is gone (deleted by
        -- hand) counts as a writer, so that nobody is let in beside a lease whose mode cannot be known; it frees at its expiry.
        local function holders()
          local held = redis.call('ZCARD', KEYS[1])
          local mode = '{{Read}}'
          if held > 0 then
            local rec = redis.call('HGET', KEYS[2], redis.call('ZRANGE', KEYS[1], 0, 0)[1])
            if not rec or string.sub(rec, 1, 1) ~= '{{Read}}' then
              mode = '{{Write}}'
            end
          end
          return held, mode
        end
        local function marks(now)
          return redis.call('ZCOUNT', KEYS[5], '(' .. int(now), '+inf')
        end
        local function answer(reply, now)
          if freed > 0 then
            local held, mode = holders()
            local writer = mode == '{{Write}}' and held > 0 and 1 or 0
            redis.call(ARGV[2], ARGV[1], table.concat({'{{RwLockMessages.Freed}}', freedMode, int(held), int(writer), int(marks(now))}, ' '))
          end
          return reply
        end
        local function earliest(key)
          local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
          return tonumber(first[2])
        end
        local function outlive(key, ms)
          if redis.call('PTTL', key) < ms then
            redis.call('PEXPIRE', key, int(ms))
          end
        end
        -- The leases and their records expire together, with the latest lease.
        local function keepBoth(ms)
          if redis.call('PTTL', KEYS[1]) < ms then
            redis.call('PEXPIRE', KEYS[1], int(ms))
            redis.call('PEXPIRE', KEYS[2], int(ms))
          end
        end
        -- A lease's record: "held" with its expected end at acquire and extend (which keeps the records until 10 minutes past
        -- it), its end's state at release and force. Only an acquire adds a member, so only it trims, to the last records
        -- beyond those of the leases held; an end only rewrites its lease's own record, inside the time the acquire set.
        local function remember(token, endMs, state, keepMs)
          redis.call('ZADD', KEYS[4], int(endMs * 4 + state), token)
          if keepMs then
            outlive(KEYS[4], keepMs)
          end
        end
        {{LeaseScripts.Ended}}
        local function lookup(token)
          local expires = redis.call('ZSCORE', KEYS[1], token)
          local rec = expires and redis.call('HGET', KEYS[2], token)
          if not rec then
            return nil
          end
          local l = parse(rec, token)
          if not l then
            return nil, baddata(KEYS[2], '{{BadRecord}}')
          end
          l.expires = tonumber(expires)
          return l
        end
        -- Every script starts here: the types of the keys it touches (by index), Redis's clock, the expired leases dropped,
        -- and with a token its lease. Returns now (ms), the lease and Redis time in microseconds; or the reply to give at once
        -- as its third value: a BADDATA error, or {0, why} when the token holds no lease.
        local function open(touched, token)
          local bad = wrongType(touched)
          if bad then
            return nil, nil, bad
          end
          local micros, now = clock()
          for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now))) do
            local rec = redis.call('HGET', KEYS[2], gone)
            local l = rec and parse(rec, gone) or {token = gone}
            forget(l)
            freed = freed + 1
            freedMode = l.mode or freedMode or '{{Read}}'
          end
          if not token then
            return now, nil, nil, micros
          end
          local l, broken = lookup(token)
          if not l then
            return now, nil, answer(broken or {0, ended(KEYS[4], token)}, now)
          end
          return now, l
        end

        """;

    // ARGV[3] fence retention ms, ARGV[4] token, ARGV[5] mode (r or w), ARGV[6] ttl ms, ARGV[7] the waiting writer's mark
    // ('' = none; a write only), ARGV[8] the mark's ttl ms; then, only when there is an owner, an idempotency key or a hold
    // cap: ARGV[9] owner ('' = none), ARGV[10] idempotency key ('' = none), ARGV[11] hold cap ms ('' = none)
    // Returns {1, fence, now ms, held now, earliest expiry in ms from now} acquired;
    // {2, token, mode, fence, ms left, at, cap, owner, expiry ms} idempotent replay (the lease as it stands now, in its own mode);
    // {0, retry after ms, held, writer holds (0/1), writers waiting} refused.
    // A write is granted when nobody holds; a read when no writer holds and no live mark exists. A refused write with a mark
    // adds or renews its mark, so a writer's very first refusal already holds readers back; a granted one drops its mark.
    // Retry after: the earliest moment something could change for this caller, a lease's expiry, or for a read a mark's
    // (a mark is renewed while its writer waits, so a refused reader looks again within a mark's TTL).
    // The fencing token is max(Redis time in microseconds, the name's last + 1), as a lock's, whatever the mode.
    public const string Acquire = Common + $$"""
        local now, _, bad, micros = open({1, 2, 3, 4, 5})
        if bad then
          return bad
        end
        local idem = ARGV[10] or ''
        if idem ~= '' then
          local token = redis.call('HGET', KEYS[2], 'k:' .. idem)
          local l, broken
          if token then
            l, broken = lookup(token)
          end
          if broken then
            return answer(broken, now)
          end
          if l then
            return answer({2, token, l.mode, l.fence, l.expires - now, l.at, l.cap, l.owner, l.expires}, now)
          end
        end
        local write = ARGV[5] == '{{Write}}'
        local held, mode = holders()
        local waiting = marks(now)
        local mark = ARGV[7] or ''
        if (write and held > 0) or (not write and ((held > 0 and mode == '{{Write}}') or waiting > 0)) then
          if write and mark ~= '' then
            local ttl = tonumber(ARGV[8])
            redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', int(now))
            redis.call('ZADD', KEYS[5], int(now + ttl), mark)
            outlive(KEYS[5], ttl)
            waiting = redis.call('ZCARD', KEYS[5])
          end
          local retry = held > 0 and earliest(KEYS[1]) or nil
          if not write and waiting > 0 then
            local m = earliest(KEYS[5])
            if not retry or m < retry then
              retry = m
            end
          end
          local writer = held > 0 and mode == '{{Write}}' and 1 or 0
          return answer({0, math.max(0, (retry or now) - now), held, writer, waiting}, now)
        end
        local fence = micros
        local last = tonumber(redis.call('GET', KEYS[3]))
        if last and last >= fence then
          if last > {{LeaseScripts.MaxLastFence}} then
            return answer(baddata(KEYS[3], '{{LeaseScripts.FenceTooHigh}}'), now)
          end
          fence = math.floor(last) + 1
        end
        local token, ttl = ARGV[4], tonumber(ARGV[6])
        local keep = tonumber(ARGV[3]) + ttl
        local kept = redis.call('PTTL', KEYS[3])
        if kept > keep then
          keep = kept
        end
        redis.call('SET', KEYS[3], int(fence), 'PX', int(keep))
        local cap = 0
        if (ARGV[11] or '') ~= '' then
          cap = now + tonumber(ARGV[11])
        end
        local rec = table.concat({ARGV[5], int(fence), int(now), int(cap), int(ttl), idem, ARGV[9] or ''}, '\n')
        if idem ~= '' then
          redis.call('HSET', KEYS[2], token, rec, 'k:' .. idem, token)
          redis.call(ARGV[2], ARGV[1], '{{LeaseNotices.Acquired}}')
        else
          redis.call('HSET', KEYS[2], token, rec)
        end
        redis.call('ZADD', KEYS[1], int(now + ttl), token)
        keepBoth(ttl)
        if write and mark ~= '' then
          redis.call('ZREM', KEYS[5], mark)
        end
        remember(token, now + ttl, {{LeaseScripts.HeldState}}, ttl + {{LeaseScripts.LeaseMemoryMs}})
        redis.call('ZREMRANGEBYRANK', KEYS[4], 0, int(-held - 1 - {{LeaseScripts.LeaseRecords}} - 1))
        local first = ttl
        if held > 0 then
          first = earliest(KEYS[1]) - now
        end
        return answer({1, fence, now, held + 1, first}, now)
        """;

    // ARGV[3] token
    // Returns {1, held ms, mode} released (and what it freed announced), {0, why} when this token holds no lease.
    // The fencing token already outlives the lease's expiry by the retention (see the acquire), so a release leaves it alone.
    public const string Release = Common + $$"""
        local now, l, reply = open({1, 2, 4, 5}, ARGV[3])
        if reply then
          return reply
        end
        forget(l)
        remember(l.token, now, {{LeaseScripts.ReleasedState}})
        freed, freedMode = freed + 1, l.mode
        return answer({1, now - l.at, l.mode}, now)
        """;

    // ARGV[3] the fencing token of the one lease to release ('' = every lease)
    // Returns {n, then per lease released: mode, fence, owner, held ms}; n = 0 when nothing held (or no lease has that
    // fencing token). The holders' tokens are never returned: their lease records say "forced", which their next check,
    // extend, release or watch reports. Every record is read before the first release, so one that does not parse is a
    // BADDATA error with nothing released.
    public const string ForceRelease = Common + $$"""
        local now, _, bad = open({1, 2, 4, 5})
        if bad then
          return bad
        end
        local chosen = {}
        for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local l, broken = lookup(token)
          if broken then
            return answer(broken, now)
          end
          if l and (ARGV[3] == '' or l.fence == tonumber(ARGV[3])) then
            chosen[#chosen + 1] = l
          end
        end
        local reply = {#chosen}
        for _, l in ipairs(chosen) do
          for _, v in ipairs({l.mode, l.fence, l.owner, now - l.at}) do
            reply[#reply + 1] = v
          end
          forget(l)
          remember(l.token, now, {{LeaseScripts.ForcedState}})
          freed, freedMode = freed + 1, l.mode
        end
        return answer(reply, now)
        """;

    // ARGV[3] fence retention ms, ARGV[4] token, ARGV[5] new ttl ms ('' = the ttl the lease was acquired with)
    // Returns {1, mode, fence, ttl, now ms, at, cap, owner} extended, {0, why} when this token holds no lease.
    // An expired lease is gone before the token is looked up: it is never brought back. With a hold cap the TTL is cut to
    // what is left of it. The name's last fencing token is kept the retention past the new expiry. A lease whose expiry
    // comes sooner than before is announced ("shortened"): waiters re-arm their expiry timers to it.
    public const string Extend = Common + $$"""
        local now, l, reply = open({1, 2, 3, 4, 5}, ARGV[4])
        if reply then
          return reply
        end
        local ttl = l.ttl
        if ARGV[5] ~= '' then
          ttl = tonumber(ARGV[5])
        end
        if l.cap > 0 then
          local left = l.cap - now
          if left <= 0 then
            return answer({0, {{LeaseScripts.ExpiredState}}}, now)
          end
          if left < ttl then
            ttl = left
          end
        end
        redis.call('ZADD', KEYS[1], 'XX', int(now + ttl), l.token)
        keepBoth(ttl)
        outlive(KEYS[3], tonumber(ARGV[3]) + ttl)
        remember(l.token, now + ttl, {{LeaseScripts.HeldState}}, ttl + {{LeaseScripts.LeaseMemoryMs}})
        if now + ttl < l.expires then
          redis.call(ARGV[2], ARGV[1], '{{LeaseNotices.Shortened}}')
        end
        return answer({1, l.mode, l.fence, ttl, now, l.at, l.cap, l.owner}, now)
        """;

    // ARGV[3] token
    // Returns {1, mode, fence, ms left, now ms, at, cap, owner} while this token holds a lease, else {0, why}: the extend's
    // reply shape, with what is left of the TTL in place of the TTL granted.
    public const string Check = Common + """
        local now, l, reply = open({1, 2, 4, 5}, ARGV[3])
        return reply or answer({1, l.mode, l.fence, l.expires - now, now, l.at, l.cap, l.owner}, now)
        """;

    // ARGV[3] most leases to describe
    // Returns {held, writer holds (0/1), writers waiting, now ms, then per lease: mode, fence, expires, at, cap, owner}, for the
    // leases that expire first (at most ARGV[3] of them). Never a token.
    public const string Inspect = Common + $$"""
        local now, _, bad = open({1, 2, 5})
        if bad then
          return bad
        end
        local held, mode = holders()
        local reply = {held, held > 0 and mode == '{{Write}}' and 1 or 0, marks(now), now}
        for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, int(tonumber(ARGV[3]) - 1))) do
          local l, broken = lookup(token)
          if broken then
            return answer(broken, now)
          end
          if l then
            for _, v in ipairs({l.mode, l.fence, l.expires, l.at, l.cap, l.owner}) do
              reply[#reply + 1] = v
            end
          end
        end
        return answer(reply, now)
        """;

    // ARGV[3] mark, ARGV[4] the mark's ttl ms
    // Returns the count of live marks, this one included. Adds the mark or renews it: the waiting request's instance calls it
    // while the request waits, so a mark lapsed in a pause is put back. Marks whose expiry passed are dropped here, so the
    // marks of dead instances do not pile up while live writers keep the key alive. No lease is looked at, nothing announced.
    public const string Mark = Common + """
        local bad = wrongType({5})
        if bad then
          return bad
        end
        local _, now = clock()
        redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', int(now))
        local ttl = tonumber(ARGV[4])
        redis.call('ZADD', KEYS[5], int(now + ttl), ARGV[3])
        outlive(KEYS[5], ttl)
        return redis.call('ZCARD', KEYS[5])
        """;

    // ARGV[3] mark
    // Returns 1 when the mark was there and is removed (and announced, so that the readers it held back are woken), else 0.
    public const string Unmark = Common + $$"""
        local now, _, bad = open({1, 2, 5})
        if bad then
          return bad
        end
        local removed = redis.call('ZREM', KEYS[5], ARGV[3])
        if removed == 1 then
          freed = freed + 1
          freedMode = freedMode or '{{RwLockMessages.Mark}}'
        end
        return answer(removed, now)
        """;
}
