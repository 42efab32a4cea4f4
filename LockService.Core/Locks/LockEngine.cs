using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>
/// The lock engine: every operation is one Lua script run atomically in Redis, so correctness never depends
/// on a client's clock. Waiting happens here, woken by Redis pub/sub on release and by a timer on expiry.
/// One engine per process, sharing one <see cref="IConnectionMultiplexer"/>.
/// </summary>
public sealed class LockEngine : IDisposable
{
    private static readonly RedisScript AcquireScript = new(LockScripts.Acquire);
    private static readonly RedisScript ReleaseScript = new(LockScripts.Release);
    private static readonly RedisScript ForceReleaseScript = new(LockScripts.ForceRelease);
    private static readonly RedisScript ExtendScript = new(LockScripts.Extend);
    private static readonly RedisScript InspectScript = new(LockScripts.Inspect);

    private readonly RedisScriptRunner _redis;
    private readonly LockOptions _options;
    private readonly TimeProvider _clock;
    private readonly WaitQueues _queues;

    // The re-check of a queue's head (Locks:RecheckMs), for what publishes nothing: a key deleted behind the
    // service's back. Hand-off on release, expiry and a shortened TTL never rely on it (pub/sub and the expiry timer).
    private readonly TimeSpan _recheck;
    private readonly long _fenceRetentionMs;

    /// <summary>
    /// Creates the engine over a shared multiplexer. Its waits and watches count against <paramref name="bounds"/>, the
    /// instance's (shared with the other kinds' engines); without them, against bounds of its own.
    /// </summary>
    public LockEngine(IConnectionMultiplexer multiplexer, LockOptions options, RedisOptions redis, TimeProvider? clock = null, WaitBounds? bounds = null)
    {
        _options = options;
        _clock = clock ?? TimeProvider.System;
        _redis = new RedisScriptRunner(multiplexer, redis, _clock);
        _queues = new WaitQueues(multiplexer, bounds ?? new WaitBounds(options), _clock);
        _recheck = TimeSpan.FromMilliseconds(options.RecheckMs);
        _fenceRetentionMs = options.FenceRetentionMs;
    }

    /// <summary>Requests of this instance waiting for a lock right now.</summary>
    public int WaitingCount => _queues.Waiting;

    /// <summary>Watches of this instance open right now.</summary>
    public int WatchingCount => _queues.Watching;

    /// <summary>
    /// Takes the lock if it is free; otherwise waits up to <see cref="AcquireRequest.WaitMs"/> for it. Cancelling
    /// ends the wait, and a lock obtained at the moment of cancellation is released before this throws (a replay's is not:
    /// another request obtained it). A replay (<see cref="AcquireRequest.IdempotencyKey"/>) answers the lease as it stands
    /// now: what remains of its TTL, and its expiry. Waiting counts against the instance's bound and the tenant's share.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks <see cref="LockRules"/> under this engine's <see cref="LockOptions"/>.</exception>
    public async Task<AcquireResult> AcquireAsync(LockName name, AcquireRequest request, CancellationToken cancellationToken = default)
    {
        if (request.Validate(_options) is { } errors)
        {
            throw errors.ToException();
        }

        request = request.WithDefaults(_options);
        var keys = KeysOf(name);
        var token = LockToken.New();
        if (request.WaitMs <= 0 || !_queues.HasQueue(keys.Lock))
        {
            var first = await TryAcquireAsync(name, keys, token, request, waited: false).ConfigureAwait(false);
            if (first.Status != AcquireStatus.Held || request.WaitMs <= 0)
            {
                await first.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                return first;
            }
        }

        return await WaitAsync(name, keys, token, request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases the lock if <paramref name="token"/> holds it, and wakes a waiter and every watch; else says why it does not.</summary>
    public async Task<ReleaseResult> ReleaseAsync(LockName name, string token)
    {
        var keys = KeysOf(name);
        var answer = (long)(await _redis.EvalAsync(
            ReleaseScript, [keys.Lock, keys.LastLease, keys.Leases], [token, keys.Channel, _redis.PublishCommand]).ConfigureAwait(false));
        return answer >= 0
            ? new ReleaseResult(true, null, HeldSince(answer))
            : new ReleaseResult(false, (LeaseEnd)(-answer), 0);
    }

    /// <summary>
    /// Releases the lock whoever holds it (an operator's force-release): waiters and watches are woken, and the
    /// holder's next check, extend, release or watch says <see cref="LeaseEnd.Forced"/>.
    /// </summary>
    public async Task<ForceReleaseResult> ForceReleaseAsync(LockName name)
    {
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(
            ForceReleaseScript, [keys.Lock, keys.LastLease], [keys.Channel, _redis.PublishCommand]).ConfigureAwait(false))!;
        return (long)values[0] == 1
            ? new ForceReleaseResult(true, (long)values[1], OwnerOf(values[2]), (long)values[3])
            : default;
    }

    /// <summary>
    /// Sets the remaining TTL to <see cref="ExtendRequest.TtlMs"/> from now (default: the TTL it was acquired with),
    /// cut to what is left of the hold cap; or says why the token no longer holds the lock. A shorter TTL wakes the
    /// waiters of every instance when it lapses.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks <see cref="LockRules"/> under this engine's <see cref="LockOptions"/>.</exception>
    public async Task<ExtendResult> ExtendAsync(LockName name, string token, ExtendRequest request)
    {
        if (request.Validate(_options) is { } errors)
        {
            throw errors.ToException();
        }

        var keys = KeysOf(name);
        var written = await _redis.WriteAsync(
            keys.Lock,
            ExtendScript,
            [keys.Lock, keys.Fence, keys.Leases, keys.LastLease],
            [token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString, _fenceRetentionMs, keys.Channel, _redis.PublishCommand]).ConfigureAwait(false);
        var values = (RedisResult[])written.Result!;
        if ((long)values[0] != 1)
        {
            return new ExtendResult(null, (LeaseEnd)(long)values[1]);
        }

        // {1, fence, ttl, owner, now ms, at, cap}
        var ttl = (long)values[2];
        await _redis.ConfirmAsync(written).ConfigureAwait(false);
        var (acquiredAt, maxHoldMs) = HoldOf(values[5], values[6]);
        return new ExtendResult(
            new LockLease(name.Key, token, (long)values[1], ttl, RedisTime(values[4], ttl), OwnerOf(values[3]), acquiredAt, maxHoldMs), null);
    }

    /// <summary>The holder of the lock (never its token), or null when the lock is free.</summary>
    public async Task<LockInfo?> InspectAsync(LockName name) => (await InspectAsync(name, RedisValue.EmptyString).ConfigureAwait(false)).Info;

    /// <summary>The lock's state when <paramref name="token"/> holds it, else why it does not.</summary>
    public Task<CheckResult> CheckAsync(LockName name, string token) => InspectAsync(name, token);

    /// <summary>
    /// Waits up to <paramref name="waitMs"/> until <paramref name="token"/> stops holding the lock, and answers at
    /// once when it does (released, force-released, expired, a shortened TTL lapsing; through any instance), with
    /// why; or, when the wait ran out, the lock as it is then. Bounded per instance by <see cref="LockOptions.MaxWatchers"/>,
    /// and per tenant by its share of it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="waitMs"/> is outside 0 .. <see cref="LockOptions.MaxWaitMs"/>.</exception>
    public Task<CheckResult> WatchAsync(LockName name, string token, long waitMs, CancellationToken cancellationToken = default)
    {
        RequestErrors? errors = null;
        LockRules.CheckWait(waitMs, _options, ref errors);
        return errors is null ? WatchAsync(name, token, waitMs, _recheck, cancellationToken) : throw errors.ToException();
    }

    /// <summary>
    /// Keeps a lease alive for as long as its holder wants it (a stream's connection): renews it every third of its
    /// TTL, and watches it in between so that a loss is known at once. Returns why the lease ended (a lock that
    /// vanished from Redis, a hold cap reached: <see cref="LeaseEnd.Expired"/>; Redis unreachable until the last
    /// granted expiry: <see cref="LeaseEnd.Unavailable"/>), or null when <paramref name="stop"/> was cancelled first,
    /// in which case the lease is still held and the caller releases it.
    /// </summary>
    public Task<LeaseEnd?> KeepAsync(LockName name, LockLease lease, Func<LockLease, ValueTask> renewed, CancellationToken stop) =>
        LeaseKeeping.KeepAsync(
            lease,
            _clock,
            (token, period, cancellation) => WatchAsync(name, token, (long)period.TotalMilliseconds, period, cancellation),
            token => ExtendAsync(name, token, default),
            renewed,
            stop);

    private async Task<CheckResult> WatchAsync(LockName name, string token, long waitMs, TimeSpan recheck, CancellationToken cancellationToken)
    {
        var keys = KeysOf(name);
        var deadline = _clock.GetTimestamp() + (long)(waitMs * (_clock.TimestampFrequency / 1000.0));
        var first = await InspectAsync(name, token).ConfigureAwait(false);
        if (first.Info is null || waitMs <= 0)
        {
            return first;
        }

        var watcher = _queues.TryWatch(keys.Lock, _redis.ChannelOf(keys.Channel), name.Tenant, out var refused);
        if (watcher is null)
        {
            return new CheckResult(null, null, refused);
        }

        try
        {
            // Subscribed before the next look, so a release after it cannot go unheard.
            await watcher.Queue.Subscription.WaitAsync(_redis.Timeout, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var now = await InspectAsync(name, token).ConfigureAwait(false);
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                if (now.Info is null || remaining <= TimeSpan.Zero)
                {
                    return now;
                }

                // The lock's own expiry is when this watch must look again, whatever else wakes it first.
                _queues.WakeHeadAfter(watcher.Queue, now.Info.TtlMs);
                await watcher.WaitAsync(remaining < recheck ? remaining : recheck, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _queues.Leave(watcher, acquired: false);
        }
    }

    /// <summary>Pings Redis; throws when it does not answer within the configured timeout.</summary>
    public Task PingAsync() => _redis.PingAsync();

    /// <inheritdoc />
    public void Dispose() => _queues.Dispose();

    private LockKeys KeysOf(LockName name) => LockKeys.For(_options.KeyPrefix, name);

    private async Task<AcquireResult> WaitAsync(LockName name, LockKeys keys, string token, AcquireRequest request, CancellationToken cancellationToken)
    {
        var deadline = _clock.GetTimestamp() + (long)(request.WaitMs * (_clock.TimestampFrequency / 1000.0));
        var idempotent = request.IdempotencyKey is not null;
        var waiter = _queues.TryJoin(keys.Lock, _redis.ChannelOf(keys.Channel), name.Tenant, idempotent, limit: 0, out var refused);
        if (waiter is null)
        {
            return AcquireResult.NoRoomToWait(refused, name);
        }

        var acquired = false;
        try
        {
            await waiter.Queue.Subscription.WaitAsync(_redis.Timeout, cancellationToken).ConfigureAwait(false);

            // Subscribed before this attempt, so a release after it cannot go unheard. A waiter behind others
            // does not try: they are first in line, and the release that frees the lock will wake them.
            var attempt = idempotent || _queues.IsHead(waiter);
            long retryAfterMs = 0;
            while (true)
            {
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                if (attempt || (remaining <= TimeSpan.Zero && retryAfterMs <= 0))
                {
                    var result = await TryAcquireAsync(name, keys, token, request, waited: true).ConfigureAwait(false);
                    if (result.Status != AcquireStatus.Held)
                    {
                        acquired = result.Acquired;
                        if (acquired)
                        {
                            // The next holder is this one: if it vanishes, its TTL is when the head must look again.
                            _queues.WakeHeadAfter(waiter.Queue, result.Lease!.TtlMs);
                        }

                        await result.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                        return result;
                    }

                    retryAfterMs = result.RetryAfterMs;
                    _queues.WakeHeadAfter(waiter.Queue, retryAfterMs);
                    remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                }

                if (remaining <= TimeSpan.Zero)
                {
                    return AcquireResult.HeldBySomeoneElse(Math.Max(retryAfterMs, 0), waited: true, name);
                }

                var started = _clock.GetTimestamp();
                var signalled = await waiter.WaitAsync(remaining < _recheck ? remaining : _recheck, cancellationToken).ConfigureAwait(false);
                retryAfterMs -= (long)_clock.GetElapsedTime(started).TotalMilliseconds;
                attempt = signalled || (remaining > _recheck && _queues.IsHead(waiter));
            }
        }
        finally
        {
            _queues.Leave(waiter, acquired);
        }
    }

    private async Task<AcquireResult> TryAcquireAsync(LockName name, LockKeys keys, string token, AcquireRequest request, bool waited)
    {
        RedisValue[] args = request.Owner is null && request.IdempotencyKey is null && request.MaxHoldMs is null
            ? [token, request.TtlMs, _fenceRetentionMs + request.TtlMs, request.TtlMs + LockScripts.LeaseMemory]
            :
            [
                token, request.TtlMs, _fenceRetentionMs + request.TtlMs, request.TtlMs + LockScripts.LeaseMemory, request.Owner ?? string.Empty, request.IdempotencyKey ?? string.Empty,
                request.IdempotencyKey is null ? RedisValue.EmptyString : keys.Channel, _redis.PublishCommand,
                request.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString,
            ];
        RedisScriptRunner.Written written;
        try
        {
            written = await _redis.WriteAsync(keys.Lock, AcquireScript, [keys.Lock, keys.Fence, keys.Leases, keys.LastLease], args).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            // The acquire may still run in Redis later (it may sit in a paused server's queue), and its caller is
            // told it failed: a release of its token is sent right behind it, on the same connection, so Redis
            // runs it after the acquire and no lock is left to a caller that was told "503".
            _ = ReleaseAbandonedAsync(keys, token);
            throw;
        }

        var values = (RedisResult[])written.Result!;
        switch ((long)values[0])
        {
            case 1:
                var lease = new LockLease(
                    name.Key, token, (long)values[1], request.TtlMs, RedisTime(values[2], request.TtlMs), request.Owner, RedisTime(values[2], 0), request.MaxHoldMs);
                try
                {
                    await _redis.ConfirmAsync(written).ConfigureAwait(false);
                }
                catch
                {
                    // Sent behind the write on the same connection, so Redis runs it next. The 503 does not wait
                    // for it: it may queue behind another request's WAIT, and the answer must stay within the bound.
                    _ = ReleaseAbandonedAsync(keys, token);
                    throw;
                }

                return AcquireResult.Granted(lease, waited, this, name);
            case 2:
                // The lease as it stands now: what remains of its TTL and its expiry, after any extend.
                var (replayAt, replayCap) = HoldOf(values[6], values[7]);
                var replay = new LockLease(
                    name.Key, (string)values[2]!, (long)values[1], (long)values[3],
                    DateTimeOffset.FromUnixTimeMilliseconds((long)values[4]), OwnerOf(values[5]), replayAt, replayCap);
                // The same lease, so the same handle: disposing a replay releases the lock like disposing the original.
                return AcquireResult.Replay(replay, waited, this, name);
            default:
                // The script answers a lock without expiry (PTTL -1) with BADDATA, so the PTTL here is the holder's TTL.
                return AcquireResult.HeldBySomeoneElse((long)values[1], waited, name);
        }
    }

    private async Task<CheckResult> InspectAsync(LockName name, RedisValue token)
    {
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(InspectScript, [keys.Lock, keys.LastLease, keys.Leases], [token]).ConfigureAwait(false))!;
        if ((long)values[0] != 1)
        {
            // {0, why} for a token; {0, 0} for a free lock when no token was asked about.
            var why = (long)values[1];
            return new CheckResult(null, why == 0 ? null : (LeaseEnd)why);
        }

        // {1, fence, owner, pttl, now ms, at, cap}
        var ttl = (long)values[3];
        var (acquiredAt, maxHoldMs) = HoldOf(values[5], values[6]);
        return new CheckResult(new LockInfo(name.Key, (long)values[1], OwnerOf(values[2]), ttl, RedisTime(values[4], ttl), acquiredAt, maxHoldMs), null);
    }

    // A lock's acquiredAt and hold cap from its hash's 'at' and 'cap' (absolute, Redis ms). A lock written before
    // 'at' existed (an older version of the service) reports the Unix epoch rather than failing.
    private static (DateTimeOffset AcquiredAt, long? MaxHoldMs) HoldOf(RedisResult at, RedisResult cap)
    {
        var acquiredMs = at.IsNull ? 0 : (long)at;
        return (DateTimeOffset.FromUnixTimeMilliseconds(acquiredMs), cap.IsNull ? null : (long)cap - acquiredMs);
    }

    private async Task ReleaseAbandonedAsync(LockKeys keys, string token)
    {
        // Redis may be down rather than slow: then keep trying for a while; the lock's TTL is the backstop.
        for (var attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                await _redis.EvalUnboundedAsync(ReleaseScript, [keys.Lock, keys.LastLease, keys.Leases], [token, keys.Channel, _redis.PublishCommand]).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
            {
                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
        }
    }

    // How long a released lease was held, from when it was acquired (Redis ms): by this instance's clock, which the
    // release script spares itself reading Redis's for (a figure for the hold-time metric, never in a body).
    private long HeldSince(long acquiredAtMs) =>
        acquiredAtMs <= 0 ? 0 : Math.Max(0, _clock.GetUtcNow().ToUnixTimeMilliseconds() - acquiredAtMs);

    // Redis's clock (milliseconds from TIME inside the script) plus an offset: every time in a body comes from the
    // same clock as the expiry itself, whichever instance answers.
    private static DateTimeOffset RedisTime(RedisResult unixMs, long plusMs) => DateTimeOffset.FromUnixTimeMilliseconds((long)unixMs + plusMs);

    private static string? OwnerOf(RedisResult value)
    {
        var owner = (string?)value;
        return string.IsNullOrEmpty(owner) ? null : owner;
    }
}
