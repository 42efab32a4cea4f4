using LockService.Core.Leases;
namespace LockService.Core.Locks;

/// <summary>
/// The Lua scripts behind every lock operation. Each runs atomically in Redis, so no operation depends on
/// a client's clock or on a read-then-write race. Keys come only through KEYS and values only through ARGV.
/// Times come from Redis's TIME, never from an instance's clock.
/// <list type="bullet">
/// <item>A lock is a string that expires with it: its lease, one field per line (token, fence, ttl, at = acquired
/// at, cap = hold deadline with a hold cap, idem and exp with an idempotency key, owner; an absent one empty).
/// One SET with PX writes it, where a hash took HSET and PEXPIRE. Owners and idempotency keys hold no control
/// characters, so a line break cannot occur inside a field.</item>
/// <item>Its last fencing token is a separate key that outlives the lease's expiry (as an acquire or extend set it) by
/// <see cref="LeaseOptions.FenceRetentionMs"/>, so at least that long past a release or force-release too: fencing
/// tokens keep increasing across expiry and release, and an unused name leaves nothing. It holds no token.</item>
/// <item>Its last lease is a string, <c>state at token</c> (state held, released or forced; at = when it was
/// acquired, Redis ms), kept 10 minutes past the lease's end (written with the lease's TTL plus 10 minutes, and
/// again when it ends): a held state whose lock is gone expired. Older leases are a sorted set, token by score
/// <c>at * 4 + state</c> (released, forced, expired), trimmed to the last 32 and kept 10 minutes after the newest
/// joined; a lease joins it when the next one begins. A release writes one record, and a name used once leaves its
/// fencing key alone after 10 minutes.</item>
/// </list>
/// Redis spends most of a script's time in Lua itself, not in the commands (callgrind, per acquire+release cycle):
/// so the common path defines no helper it does not call, the not-held paths define theirs where they start, and a
/// release reads no clock (the hold time in its reply is the instance's to compute from <c>at</c>).
/// </summary>
/// <remarks>
/// A reply array ends at its first Lua nil, so an optional field is returned as <c>false</c> (a null reply), never nil.
/// Fencing tokens are near 2^51 (microseconds since 1970). Lua's <c>tostring</c> and <c>..</c> print numbers
/// with <c>%.14g</c>, and Redis 7 passes a Lua number to a command in exponent form (<c>6e+05</c>), so the
/// scripts compare numbers as numbers, pass every integer to Redis through <c>string.format('%d')</c> (a 64-bit
/// integer conversion) and return them as numbers (integer replies).
/// </remarks>
internal static class LockScripts
{
    // The lease-record states, the error word and the fencing bound every kind's scripts share (LeaseScripts), under the
    // short names these scripts use.
    private const string HeldState = LeaseScripts.HeldState, ReleasedState = LeaseScripts.ReleasedState, ForcedState = LeaseScripts.ForcedState,
        ExpiredState = LeaseScripts.ExpiredState, UnknownState = LeaseScripts.UnknownState, LeaseMemoryMs = LeaseScripts.LeaseMemoryMs,
        LeaseRecords = LeaseScripts.LeaseRecords, BadData = LeaseScripts.BadData, WrongType = LeaseScripts.WrongType,
        MaxLastFence = LeaseScripts.MaxLastFence, FenceTooHigh = LeaseScripts.FenceTooHigh;

    /// <summary>What <see cref="LeaseScripts.BadData"/> says of a lock key without expiry (a PERSIST by hand).</summary>
    public const string NoExpiry = "has no expiry (made persistent by hand), so the lock would never free; release it, force-release it or give it a TTL";

    // A lock's lease as a table of its fields, an absent one false (as HMGET gives it), and pttl its PTTL (-1: no expiry, a
    // PERSIST by hand); nil when the lock is free; nil and what is wrong when the key holds what this service never writes
    // (another type, a lease that does not parse), for the script to answer BADDATA before it writes anything.
    // A hash is read field by field: versions before 2026-11-30 wrote a lock as a hash, and a lock held across the upgrade
    // (kept alive by extends) must still be released and extended. Remove that branch after 2027-03-01: a hash lock still
    // held then answers 503 redis_data_invalid naming its key, and an operator force-releases it (which deletes any type).
    internal const string Lease = $$"""
        local function lease(key)
          local v = redis.pcall('GET', key)
          if not v then
            return nil
          end
          local l
          if type(v) == 'table' then
            local h = redis.pcall('HMGET', key, 'token', 'fence', 'ttl', 'at', 'cap', 'idem', 'exp', 'owner')
            if h.err then
              return nil, '{{WrongType}}'
            end
            l = {token = h[1], fence = h[2], ttl = h[3], at = h[4], cap = h[5], idem = h[6], exp = h[7], owner = h[8]}
          else
            local token, fence, ttl, at, cap, idem, exp, owner =
              string.match(v, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
            l = {token = token, fence = fence, ttl = ttl, at = at, cap = cap ~= '' and cap, idem = idem ~= '' and idem,
              exp = exp ~= '' and exp, owner = owner ~= '' and owner}
          end
          local fence = l.fence and string.match(l.fence, '^%d+$') and tonumber(l.fence)
          if not l.token or not fence or fence < 1 or fence > {{MaxLastFence}} + 1 or not string.match(l.ttl or '', '^%d+$')
              or (l.at and not string.match(l.at, '^%d+$')) or (l.cap and not string.match(l.cap, '^%d+$')) then
            return nil, 'holds a lock this service did not write (a value written by hand)'
          end
          l.pttl = redis.call('PTTL', key)
          return l
        end
        local function baddata(key, what)
          return redis.error_reply('{{BadData}} ' .. key .. ' ' .. what)
        end

        """;

    // Why a token does not hold the lock: its last lease's state (held there means it expired), else its record among
    // the older leases, else unknown; or nil and the key that holds another type than this service writes there. Placed
    // where a script's not-held path starts, so the common path never builds it. A state or score written by hand that
    // is none of this service's says unknown.
    private const string Why = $$"""
        local function why(lastKey, leasesKey, token)
          local v = redis.pcall('GET', lastKey)
          if type(v) == 'table' then
            return nil, lastKey
          end
          if v then
            local state, _, last = string.match(v, '^([0-3]) (%d+) (%S+)$')
            if last == token then
              if state == '{{HeldState}}' then
                return {{ExpiredState}}
              end
              return tonumber(state)
            end
          end
          local s = redis.pcall('ZSCORE', leasesKey, token)
          if type(s) == 'table' then
            return nil, leasesKey
          end
          if not s then
            return {{UnknownState}}
          end
          local recorded = tonumber(s) % 4
          if recorded == {{HeldState}} then
            return {{ExpiredState}}
          end
          if recorded == {{ReleasedState}} or recorded == {{ForcedState}} or recorded == {{ExpiredState}} then
            return recorded
          end
          return {{UnknownState}}
        end
        local function whyNot(lastKey, leasesKey, token, negative)
          local w, wrong = why(lastKey, leasesKey, token)
          if not w then
            return redis.error_reply('{{BadData}} ' .. wrong .. ' {{WrongType}}')
          end
          if negative then
            return -w
          end
          return {0, w}
        end

        """;

    internal const string NowMs = """
        local function nowMs()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        """;

    // KEYS[1] lock, KEYS[2] last fencing token, KEYS[3] older leases, KEYS[4] last lease
    // ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fence retention + ttl ms, ARGV[4] ttl + 10 minutes in ms (the last lease's
    // record); then, only when there is an owner, an idempotency key or a hold cap (the common acquire sends four
    // arguments): ARGV[5] owner ('' = none), ARGV[6] idempotency key ('' = none), ARGV[7] notify channel, ARGV[8] PUBLISH
    // or SPUBLISH, ARGV[9] hold cap ms ('' = none)
    // Returns {1, fence, now ms} acquired (both as text); {2, fence, token, ms left, expiry ms, owner, at, cap} idempotent
    // replay (the lease as it stands now, after any extend); {0, pttl} held; a BADDATA error, with nothing written, when a
    // key holds what this service never writes there.
    // The common path does no arithmetic: the fencing token and the time in ms are TIME's seconds followed by its
    // microseconds (6 digits) or their first 3, as text, and the sums are the caller's (a number read from text costs
    // Redis a strtod, and one written a sprintf).
    // The lock is written first, by SET ... NX: one command both tests that the name is free and takes it, where a PTTL
    // and a SET took two (a held lock then costs the TIME and the SET before its PTTL; the contended path tries once per
    // release). A new fencing token is max(Redis time in microseconds, the key's last token + 1): it keeps increasing when
    // Redis lost the last one (a restart without persistence, a failover), and needs no key that lives forever. The
    // time is written as the token with SET ... GET (Redis 6.2+) handing back the last one; only a last token at or past
    // the clock (a clock stepped back) takes a second SET of both. A last token that is not a number, or NaN, or below the
    // clock (a negative one), was written by hand and counts as none, as a lost one does: the token is then Redis's clock,
    // above every token issued while the clocks keep the rule Redis data loss rests on. One at or past 2^53 - 1 (infinity
    // included) cannot be exceeded below 2^53: nothing is acquired. The token is kept for the retention past the lease's
    // expiry (an extend moves it with the expiry), so a release, which ends a lease before its expiry, need not touch it.
    // The last lease's record is swapped the same way; the lease before this one ended (released, forced, or expired
    // while held) and joins the older leases.
    // Every command after the first write is a pcall: a key of another type (written by hand) fails its command without
    // writing it, and the script then puts back what it wrote (the lock deleted, the fence and last-lease values restored)
    // before its error, so no lock is left to a token nobody was handed. A pcall costs no more than a call.
    // An acquire that carries an idempotency key announces itself, so a retry of it waiting elsewhere
    // replays at once instead of waiting for the release of its own lock.
    public const string Acquire = $$"""
        local t = redis.call('TIME')
        local us = t[2]
        if #us < 6 then
          us = string.rep('0', 6 - #us) .. us
        end
        local f = t[1] .. us
        local at = t[1] .. string.sub(us, 1, 3)
        local idem = ARGV[6] or ''
        local cap, exp = ARGV[9] or '', ''
        if cap ~= '' then
          cap = string.format('%d', tonumber(at) + tonumber(cap))
        end
        if idem ~= '' then
          exp = string.format('%d', tonumber(at) + tonumber(ARGV[2]))
        end
        local rest = '\n' .. ARGV[2] .. '\n' .. at .. '\n' .. cap .. '\n' .. idem .. '\n' .. exp .. '\n' .. (ARGV[5] or '')
        if redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. f .. rest, 'NX', 'PX', ARGV[2]) then
          local bad, previous
          local last = redis.pcall('SET', KEYS[2], f, 'PX', ARGV[3], 'GET')
          if type(last) == 'table' then
            bad = KEYS[2] .. ' {{WrongType}}'
          else
            local n = last and tonumber(last)
            if n and n >= tonumber(f) then
              if n > {{MaxLastFence}} then
                bad = KEYS[2] .. ' {{FenceTooHigh}}'
              else
                f = string.format('%d', math.floor(n) + 1)
                redis.call('SET', KEYS[2], f, 'PX', ARGV[3])
                redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. f .. rest, 'PX', ARGV[2])
              end
            end
          end
          if not bad then
            previous = redis.pcall('SET', KEYS[4], '{{HeldState}} ' .. at .. ' ' .. ARGV[1], 'PX', ARGV[4], 'GET')
            if type(previous) == 'table' then
              bad = KEYS[4] .. ' {{WrongType}}'
            elseif previous then
              local state, pat, token = string.match(previous, '^(%d) (%d+) (%S+)$')
              if token then
                if state == '{{HeldState}}' then
                  state = '{{ExpiredState}}'
                end
                if type(redis.pcall('ZADD', KEYS[3], string.format('%d', tonumber(pat) * 4 + tonumber(state)), token)) == 'table' then
                  bad = KEYS[3] .. ' {{WrongType}}'
                else
                  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -{{LeaseRecords}} - 1)
                  redis.call('PEXPIRE', KEYS[3], {{LeaseMemoryMs}})
                end
              end
            end
          end
          if bad then
            redis.call('DEL', KEYS[1])
            if type(last) == 'string' then
              redis.call('SET', KEYS[2], last, 'PX', ARGV[3])
            elseif last == false then
              redis.call('DEL', KEYS[2])
            end
            if type(previous) == 'string' then
              redis.call('SET', KEYS[4], previous, 'PX', {{LeaseMemoryMs}})
            elseif previous == false then
              redis.call('DEL', KEYS[4])
            end
            return redis.error_reply('{{BadData}} ' .. bad)
          end
          if idem ~= '' then
            redis.call(ARGV[8], ARGV[7], '{{LeaseNotices.Acquired}}')
          end
          return {1, f, at}
        end
        local pttl = redis.call('PTTL', KEYS[1])
        if pttl < 0 then
          return redis.error_reply('{{BadData}} ' .. KEYS[1] .. ' {{NoExpiry}}')
        end
        if idem ~= '' then
        {{Lease}}
          local l = lease(KEYS[1])
          if l and l.idem == idem then
            return {2, tonumber(l.fence), l.token, pttl, tonumber(at) + pttl, l.owner, tonumber(l.at) or false, tonumber(l.cap) or false}
          end
        end
        return {0, pttl}
        """;

    // KEYS[1] lock, KEYS[2] last lease, KEYS[3] older leases
    // ARGV[1] token, ARGV[2] notify channel, ARGV[3] PUBLISH or SPUBLISH
    // Returns at >= 0 released (and waiters and watchers notified; at = when it was acquired, Redis ms, as the lease's
    // text, 0 when an older version's lock did not say), -why when this token does not hold it: one number, not an
    // array, because this is half of every cycle. A key of another type is a BADDATA error, before any write.
    // The common path reads only the token and 'at' from the lease. The fencing token already outlives the lease's
    // expiry by the retention (see the acquire), so a release leaves it alone.
    public const string Release = $$"""
        local v = redis.pcall('GET', KEYS[1])
        local token, at
        if type(v) == 'string' then
          token, at = string.match(v, '^([^\n]*)\n[^\n]*\n[^\n]*\n(%d+)\n')
        elseif v then
          local h = redis.pcall('HMGET', KEYS[1], 'token', 'at')
          if h.err then
            return redis.error_reply('{{BadData}} ' .. KEYS[1] .. ' {{WrongType}}')
          end
          token, at = h[1], h[2]
        end
        if token == ARGV[1] then
          at = at or '0'
          redis.call('DEL', KEYS[1])
          redis.call('SET', KEYS[2], '{{ReleasedState}} ' .. at .. ' ' .. ARGV[1], 'PX', {{LeaseMemoryMs}})
          redis.call(ARGV[3], ARGV[2], '{{LeaseNotices.Released}}')
          return at
        end
        {{Why}}
        return whyNot(KEYS[2], KEYS[3], ARGV[1], true)
        """;

    // KEYS[1] lock, KEYS[2] last lease
    // ARGV[1] notify channel, ARGV[2] PUBLISH or SPUBLISH
    // Returns {1, fence, owner, held ms} released whoever held it, {0} when free (the fencing token outlives the lease's
    // expiry by the retention, as after a release), a BADDATA error when the lock key holds what this service never
    // writes (an operator deletes that key by hand). The holder's token is never returned: its last lease says "forced",
    // which its next check, extend, release or watch reports. A lock without expiry (a PERSIST by hand) is released.
    public const string ForceRelease = Lease + NowMs + $$"""
        local l, bad = lease(KEYS[1])
        if bad then
          return baddata(KEYS[1], bad)
        end
        if not l then
          return {0}
        end
        local now = nowMs()
        redis.call('DEL', KEYS[1])
        redis.call('SET', KEYS[2], '{{ForcedState}} ' .. (l.at or '0') .. ' ' .. l.token, 'PX', {{LeaseMemoryMs}})
        redis.call(ARGV[2], ARGV[1], '{{LeaseNotices.Released}}')
        return {1, tonumber(l.fence), l.owner, now - (tonumber(l.at) or now)}
        """;

    // KEYS[1] lock, KEYS[2] last fencing token, KEYS[3] older leases, KEYS[4] last lease
    // ARGV[1] token, ARGV[2] new ttl ms ('' = the ttl the lock was acquired with), ARGV[3] fence retention ms,
    // ARGV[4] notify channel, ARGV[5] PUBLISH or SPUBLISH
    // Returns {1, fence, ttl, owner, now ms, at, cap} extended, {0, why} when this token does not hold the lock, a BADDATA
    // error (before any write) when a key holds what this service never writes there.
    // The token check fails first on a missing key: an expired lock is never brought back. With a hold cap the
    // new TTL is cut to what is left of it; nothing left is the end of the lease ("expired"). A lock without expiry (a
    // PERSIST by hand) gets one again. The writes are PEXPIREs, which no key's type refuses.
    // A TTL made shorter is announced, so that every instance's waiters re-arm their expiry timers to the new
    // expiry instead of sleeping until the old one (a longer one needs nothing: the timer fires early, the head
    // finds the lock held and re-arms to what is left).
    public const string Extend = Lease + NowMs + $$"""
        local l, bad = lease(KEYS[1])
        if bad then
          return baddata(KEYS[1], bad)
        end
        if l and l.token == ARGV[1] then
          local now = nowMs()
          local ttl = tonumber(l.ttl)
          if ARGV[2] ~= '' then
            ttl = tonumber(ARGV[2])
          end
          if l.cap then
            local left = tonumber(l.cap) - now
            if left <= 0 then
              return {0, {{ExpiredState}}}
            end
            if left < ttl then
              ttl = left
            end
          end
          redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
          redis.call('PEXPIRE', KEYS[2], string.format('%d', tonumber(ARGV[3]) + ttl))
          redis.call('PEXPIRE', KEYS[4], string.format('%d', ttl + {{LeaseMemoryMs}}))
          if l.pttl >= 0 and ttl < l.pttl then
            redis.call(ARGV[5], ARGV[4], '{{LeaseNotices.Shortened}}')
          end
          return {1, tonumber(l.fence), ttl, l.owner, now, tonumber(l.at) or false, tonumber(l.cap) or false}
        end
        {{Why}}
        return whyNot(KEYS[4], KEYS[3], ARGV[1])
        """;

    // KEYS[1] lock, KEYS[2] last lease, KEYS[3] older leases
    // ARGV[1] token to check ('' = any holder)
    // Returns {1, fence, owner, pttl, now ms, at, cap} while held (by that token, when given); {0, why} when that
    // token does not hold it; {0, 0} when no token was given and the lock is free; a BADDATA error when a key holds what
    // this service never writes there, or the lock has no expiry (a PERSIST by hand: it would never free, and a body
    // has no TTL to show). Never returns the token.
    public const string Inspect = Lease + NowMs + $$"""
        local l, bad = lease(KEYS[1])
        if bad then
          return baddata(KEYS[1], bad)
        end
        if ARGV[1] == '' or (l and l.token == ARGV[1]) then
          if not l then
            return {0, 0}
          end
          if l.pttl < 0 then
            return baddata(KEYS[1], '{{NoExpiry}}')
          end
          return {1, tonumber(l.fence), l.owner, l.pttl, nowMs(), tonumber(l.at) or false, tonumber(l.cap) or false}
        end
        {{Why}}
        return whyNot(KEYS[2], KEYS[3], ARGV[1])
        """;
}
