using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>
/// The lock kind: one holder at a time. Its operations are the Lua scripts of <see cref="LockScripts"/>, run atomically
/// with Redis's clock; waiting, watching and keeping a stream's lock alive are the <see cref="LeaseEngine"/>'s, with the
/// base <see cref="WakePolicy"/> (a release wakes the head of the queue). One store per process.
/// </summary>
public sealed class LockStore : LeaseStore<AcquireRequest, LockLease, LockInfo, NoDetail>, IListedLeases<LockInfo>
{
    private static readonly RedisScript AcquireScript = new(LockScripts.Acquire);
    private static readonly RedisScript ReleaseScript = new(LockScripts.Release);
    private static readonly RedisScript ForceReleaseScript = new(LockScripts.ForceRelease);
    private static readonly RedisScript ExtendScript = new(LockScripts.Extend);
    private static readonly RedisScript InspectScript = new(LockScripts.Inspect);

    private readonly long _fenceRetentionMs;

    /// <summary>Creates the lock kind over <paramref name="engine"/>, its keys under <see cref="LeaseOptions.KeyPrefix"/>.</summary>
    public LockStore(LeaseEngine engine)
        : base(engine, LeaseKind.Lock, engine.Limits.KeyPrefix, WakePolicy.OnePlace)
    {
        _fenceRetentionMs = engine.Limits.FenceRetentionMs;
    }

    /// <inheritdoc />
    public override RequestErrors? Validate(AcquireRequest request, bool stream = false) => request.Validate(Limits, stream);

    /// <inheritdoc />
    public override async Task<ReleaseResult> ReleaseAsync(LeaseRef lease, string token)
    {
        var answer = (long)(await Redis.EvalAsync(ReleaseScript, ReleaseKeys(lease), ReleaseArgs(lease, token)).ConfigureAwait(false));
        return answer >= 0
            ? new ReleaseResult(true, null, HeldSince(answer))
            : new ReleaseResult(false, LeaseScripts.EndOf(-answer), 0);
    }

    /// <summary>
    /// Releases the lock whoever holds it (an operator's force-release): waiters and watches are woken, and the
    /// holder's next check, extend, release or watch says <see cref="LeaseEnd.Forced"/>.
    /// </summary>
    public async Task<ForceReleaseResult> ForceReleaseAsync(LeaseName name)
    {
        var keys = new LockKeys(RefOf(name).Key);
        var reply = (RedisResult[])(await Redis.EvalAsync(
            ForceReleaseScript, [keys.Lock, keys.LastLease], [keys.Channel, Redis.PublishCommand]).ConfigureAwait(false))!;

        // {1, fence, owner, held ms} or {0}
        return (long)reply[0] == 1
            ? new ForceReleaseResult(true, (long)reply[1], OwnerOf(reply[2]), (long)reply[3])
            : default;
    }

    /// <summary>The holder of the lock (never its token), or null when the lock is free.</summary>
    public async Task<LockInfo?> InspectAsync(LeaseName name) => (await CheckAsync(RefOf(name), RedisValue.EmptyString).ConfigureAwait(false)).Info;

    internal override string ChannelOf(string key) => new LockKeys(key).Channel;

    internal override Task SendReleaseAsync(LeaseRef lease, string token) =>
        Redis.EvalUnboundedAsync(ReleaseScript, ReleaseKeys(lease), ReleaseArgs(lease, token));

    internal override async Task<ExtendResult<LockLease>> ExtendAsync(LeaseRef lease, string token, ExtendRequest request)
    {
        var keys = new LockKeys(lease.Key);
        var written = await Redis.WriteAsync(
            keys.Lock,
            ExtendScript,
            [keys.Lock, keys.Fence, keys.Leases, keys.LastLease],
            [token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString, _fenceRetentionMs, keys.Channel, Redis.PublishCommand]).ConfigureAwait(false);
        var reply = (RedisResult[])written.Result!;

        // {1, fence, ttl, owner, now ms, at, cap} or {0, why}
        if ((long)reply[0] != 1)
        {
            return new ExtendResult<LockLease>(null, LeaseScripts.EndOf((long)reply[1]));
        }

        await Redis.ConfirmAsync(written).ConfigureAwait(false);
        var ttl = (long)reply[2];
        var (acquiredAt, maxHoldMs) = HoldOf(reply[5], reply[6]);
        return new ExtendResult<LockLease>(
            new LockLease(lease.Name.Key, token, (long)reply[1], ttl, RedisTime(reply[4], ttl), OwnerOf(reply[3]), acquiredAt, maxHoldMs), null);
    }

    internal override Task<CheckResult<LockInfo>> CheckAsync(LeaseRef lease, string token) => CheckAsync(lease, (RedisValue)token);

    internal override Task<RedisScriptRunner.Written> SendAcquireAsync(LeaseRef lease, string token, AcquireRequest request)
    {
        var keys = new LockKeys(lease.Key);
        RedisValue[] args = request.Owner is null && request.IdempotencyKey is null && request.MaxHoldMs is null
            ? [token, request.TtlMs, _fenceRetentionMs + request.TtlMs, request.TtlMs + LeaseScripts.LeaseMemory]
            :
            [
                token, request.TtlMs, _fenceRetentionMs + request.TtlMs, request.TtlMs + LeaseScripts.LeaseMemory, request.Owner ?? string.Empty, request.IdempotencyKey ?? string.Empty,
                request.IdempotencyKey is null ? RedisValue.EmptyString : keys.Channel, Redis.PublishCommand,
                request.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString,
            ];
        return Redis.WriteAsync(keys.Lock, AcquireScript, [keys.Lock, keys.Fence, keys.Leases, keys.LastLease], args);
    }

    internal override LeaseAttempt<LockLease, NoDetail> DecodeAcquire(LeaseRef lease, string token, AcquireRequest request, RedisScriptRunner.Written written)
    {
        var reply = (RedisResult[])written.Result!;
        switch ((long)reply[0])
        {
            case 1:
                // {1, fence, now ms}. If the holder vanishes, its TTL is when the head of a queue must look again.
                var granted = new LockLease(
                    lease.Name.Key, token, (long)reply[1], request.TtlMs, RedisTime(reply[2], request.TtlMs), request.Owner, RedisTime(reply[2], 0), request.MaxHoldMs);
                return LeaseAttempt<LockLease, NoDetail>.Granted(granted, request.TtlMs, -1, written);
            case 2:
                // {2, fence, token, pttl, expiry ms, owner, at, cap}: the lease as it stands now, after any extend.
                var (replayAt, replayCap) = HoldOf(reply[6], reply[7]);
                var replay = new LockLease(
                    lease.Name.Key, (string)reply[2]!, (long)reply[1], (long)reply[3],
                    DateTimeOffset.FromUnixTimeMilliseconds((long)reply[4]), OwnerOf(reply[5]), replayAt, replayCap);
                return LeaseAttempt<LockLease, NoDetail>.Replayed(replay, replay.TtlMs);
            default:
                // {0, pttl}: the script answers a lock without expiry (PTTL -1) with BADDATA, so this is the holder's TTL.
                return LeaseAttempt<LockLease, NoDetail>.Taken((long)reply[1], default);
        }
    }

    private async Task<CheckResult<LockInfo>> CheckAsync(LeaseRef lease, RedisValue token)
    {
        var keys = new LockKeys(lease.Key);
        var reply = (RedisResult[])(await Redis.EvalAsync(InspectScript, [keys.Lock, keys.LastLease, keys.Leases], [token]).ConfigureAwait(false))!;

        // {1, fence, owner, pttl, now ms, at, cap}; {0, why} for a token; {0, 0} for a free lock when no token was asked about.
        if ((long)reply[0] != 1)
        {
            var why = (long)reply[1];
            return new CheckResult<LockInfo>(null, why == 0 ? null : LeaseScripts.EndOf(why));
        }

        var ttl = (long)reply[3];
        var (acquiredAt, maxHoldMs) = HoldOf(reply[5], reply[6]);
        return new CheckResult<LockInfo>(new LockInfo(lease.Name.Key, (long)reply[1], OwnerOf(reply[2]), ttl, RedisTime(reply[4], ttl), acquiredAt, maxHoldMs), null);
    }

    private static RedisKey[] ReleaseKeys(LeaseRef lease)
    {
        var keys = new LockKeys(lease.Key);
        return [keys.Lock, keys.LastLease, keys.Leases];
    }

    private RedisValue[] ReleaseArgs(LeaseRef lease, string token) => [token, new LockKeys(lease.Key).Channel, Redis.PublishCommand];

    // A lock's acquiredAt and hold cap from its lease's 'at' and 'cap' (absolute, Redis ms).
    private static (DateTimeOffset AcquiredAt, long? MaxHoldMs) HoldOf(RedisResult at, RedisResult cap)
    {
        var acquiredMs = at.IsNull ? 0 : (long)at;
        return (DateTimeOffset.FromUnixTimeMilliseconds(acquiredMs), cap.IsNull ? null : (long)cap - acquiredMs);
    }

    // How long a released lease was held, from when it was acquired (Redis ms): by this instance's clock, which the
    // release script spares itself reading Redis's for (a figure for the hold-time metric, never in a body).
    private long HeldSince(long acquiredAtMs) =>
        acquiredAtMs <= 0 ? 0 : Math.Max(0, Engine.Clock.GetUtcNow().ToUnixTimeMilliseconds() - acquiredAtMs);

    // Redis's clock (milliseconds from TIME inside the script) plus an offset: every time in a body comes from the
    // same clock as the expiry itself, whichever instance answers.
    private static DateTimeOffset RedisTime(RedisResult unixMs, long plusMs) => DateTimeOffset.FromUnixTimeMilliseconds((long)unixMs + plusMs);
}
