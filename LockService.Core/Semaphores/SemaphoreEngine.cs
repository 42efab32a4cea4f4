using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.Semaphores;

/// <summary>
/// The counting semaphore engine: up to a caller's <c>limit</c> holders at once, each with its own permit (token, TTL,
/// slot, fencing token per slot). Every operation is one Lua script (<see cref="SemaphoreScripts"/>) run atomically with
/// Redis's clock. Waiting happens here, in the lock engine's queues (<see cref="WaitQueues"/>), woken by the places a
/// release, a force-release or an expiry frees (as many waiters as places, across instances) and by a timer set to the
/// earliest permit's expiry. One engine per process, over the lock engine's multiplexer.
/// </summary>
public sealed class SemaphoreEngine : IDisposable
{
    /// <summary>The most permits an inspection describes; more held make it say <see cref="SemaphoreInfo.Truncated"/>.</summary>
    public const int MaxInspected = 1000;

    private static readonly RedisScript AcquireScript = new(SemaphoreScripts.Acquire);
    private static readonly RedisScript ReleaseScript = new(SemaphoreScripts.Release);
    private static readonly RedisScript ForceReleaseScript = new(SemaphoreScripts.ForceRelease);
    private static readonly RedisScript ExtendScript = new(SemaphoreScripts.Extend);
    private static readonly RedisScript InspectScript = new(SemaphoreScripts.Inspect);
    private static readonly RedisScript CheckScript = new(SemaphoreScripts.Check);

    private readonly SemaphoreOptions _options;
    private readonly LockOptions _locks;
    private readonly RedisScriptRunner _redis;
    private readonly TimeProvider _clock;
    private readonly WaitQueues _queues;
    private readonly NameLister _names;

    // The re-check of a queue's front, for what publishes nothing: keys deleted behind the service's back. Hand-off on
    // release, force-release, expiry and a shortened TTL never relies on it.
    private readonly TimeSpan _recheck;
    private readonly RedisValue _fenceRetentionMs;

    /// <summary>
    /// Creates the engine over a shared multiplexer; its limits are the lock engine's (<paramref name="locks"/>), and its waits
    /// and watches count against <paramref name="bounds"/>, the instance's (without them, against bounds of its own).
    /// </summary>
    public SemaphoreEngine(IConnectionMultiplexer multiplexer, SemaphoreOptions options, LockOptions locks, RedisOptions redis, TimeProvider? clock = null, WaitBounds? bounds = null)
    {
        _options = options;
        _locks = locks;
        _clock = clock ?? TimeProvider.System;
        _redis = new RedisScriptRunner(multiplexer, redis, _clock);
        _queues = new WaitQueues(multiplexer, bounds ?? new WaitBounds(locks), _clock);
        _names = new NameLister(multiplexer, options.KeyPrefix, redis);
        _recheck = TimeSpan.FromMilliseconds(locks.RecheckMs);
        _fenceRetentionMs = locks.FenceRetentionMs;
    }

    /// <summary>Requests of this instance waiting for a permit right now.</summary>
    public int WaitingCount => _queues.Waiting;

    /// <summary>Watches of permits open in this instance right now.</summary>
    public int WatchingCount => _queues.Watching;

    /// <summary>
    /// Takes a permit when fewer than <paramref name="limit"/> are held (the caller's own limit decides, whatever limits
    /// others gave); otherwise waits up to <see cref="AcquireRequest.WaitMs"/> for one. Cancelling ends the wait, and a
    /// permit obtained at the moment of cancellation is released before this throws (a replay's is not: another request
    /// obtained it). A replay answers the permit as it stands now: what remains of its TTL, and its expiry.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks <see cref="LockRules"/> or <see cref="SemaphoreRules"/>.</exception>
    public async Task<PermitAcquireResult> AcquireAsync(LockName name, int limit, AcquireRequest request, CancellationToken cancellationToken = default)
    {
        var errors = request.Validate(_locks);
        if (!SemaphoreRules.CheckLimit(limit, _options, ref errors) || errors is not null)
        {
            throw errors!.ToException();
        }

        request = request.WithDefaults(_locks);
        var keys = KeysOf(name);
        var token = LockToken.New();
        if (request.WaitMs <= 0 || !_queues.HasQueue(keys.Semaphore))
        {
            var first = await TryAcquireAsync(name, keys, token, limit, request, waited: false).ConfigureAwait(false);
            if (first.Status != AcquireStatus.Held || request.WaitMs <= 0)
            {
                await first.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                return first;
            }
        }

        return await WaitAsync(name, keys, token, limit, request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases the permit if <paramref name="token"/> holds one (its place goes to a waiter); else says why it does not.</summary>
    public async Task<ReleaseResult> ReleaseAsync(LockName name, string token)
    {
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(ReleaseScript, keys.All, Args(keys, _fenceRetentionMs, token)).ConfigureAwait(false))!;
        return (long)values[0] == 1
            ? new ReleaseResult(true, null, (long)values[1])
            : new ReleaseResult(false, (LeaseEnd)(long)values[1], 0);
    }

    /// <summary>
    /// Releases the permit in <paramref name="slot"/>, whoever holds it (an operator's force-release): its place goes to a
    /// waiter, and its holder's next check, extend, release or watch says <see cref="LeaseEnd.Forced"/>.
    /// </summary>
    public async Task<PermitForceReleaseResult> ForceReleaseAsync(LockName name, int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(ForceReleaseScript, keys.All, Args(keys, _fenceRetentionMs, slot)).ConfigureAwait(false))!;
        return (long)values[0] == 1
            ? new PermitForceReleaseResult(true, (long)values[1], OwnerOf(values[2]), (long)values[3], (int)(long)values[4])
            : default;
    }

    /// <summary>
    /// Sets the permit's remaining TTL to <see cref="ExtendRequest.TtlMs"/> from now (default: the TTL it was acquired
    /// with), cut to what is left of its hold cap; or says why the token holds no permit. An expired permit is never
    /// brought back.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks <see cref="LockRules"/>.</exception>
    public async Task<PermitExtendResult> ExtendAsync(LockName name, string token, ExtendRequest request)
    {
        if (request.Validate(_locks) is { } errors)
        {
            throw errors.ToException();
        }

        var keys = KeysOf(name);
        var written = await _redis.WriteAsync(
            keys.Semaphore,
            ExtendScript,
            keys.All,
            Args(keys, _fenceRetentionMs, token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString)).ConfigureAwait(false);
        var values = (RedisResult[])written.Result!;
        if ((long)values[0] != 1)
        {
            return new PermitExtendResult(null, (LeaseEnd)(long)values[1]);
        }

        await _redis.ConfirmAsync(written).ConfigureAwait(false);

        // {1, slot, fence, ttl, now, at, cap, limit, owner}
        var (ttl, now, at, cap) = ((long)values[3], (long)values[4], (long)values[5], (long)values[6]);
        return new PermitExtendResult(
            new PermitLease(name.Key, token, (int)(long)values[1], (long)values[2], (int)(long)values[7], ttl, Ms(now + ttl), Ms(at), HoldCap(at, cap), OwnerOf(values[8])),
            null);
    }

    /// <summary>The held permits (never their tokens), at most <see cref="MaxInspected"/> of them; null when none is held.</summary>
    public async Task<SemaphoreInfo?> InspectAsync(LockName name)
    {
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(InspectScript, keys.All, Args(keys, MaxInspected)).ConfigureAwait(false))!;
        var held = (int)(long)values[0];
        if (held == 0)
        {
            return null;
        }

        // {held, now, then per permit: slot, fence, expires, at, cap, limit, owner}
        var now = (long)values[1];
        var permits = new List<PermitInfo>((values.Length - 2) / 7);
        for (var i = 2; i + 7 <= values.Length; i += 7)
        {
            var (expires, at) = ((long)values[i + 2], (long)values[i + 3]);
            permits.Add(new PermitInfo(
                name.Key, (int)(long)values[i], (long)values[i + 1], (int)(long)values[i + 5], OwnerOf(values[i + 6]),
                expires - now, Ms(expires), Ms(at), HoldCap(at, (long)values[i + 4])));
        }

        permits.Sort((a, b) => a.Slot.CompareTo(b.Slot));
        return new SemaphoreInfo(name.Key, held, permits, held > permits.Count);
    }

    /// <summary>
    /// One page of the semaphores of <paramref name="tenant"/> whose names start with <paramref name="namePrefix"/> and that
    /// have permits held, for operators: the same SCAN, cursors and guarantees as a listing of locks (<see cref="LockLister"/>),
    /// each semaphore as inspection shows it (never a token). A cursor that cannot be followed is refused
    /// (<see cref="SemaphorePage.CursorError"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is outside 1 .. <see cref="LockLister.MaxLimit"/>.</exception>
    /// <exception cref="LockStoreUnavailableException">No master is connected.</exception>
    public async Task<SemaphorePage> ListAsync(string tenant, string namePrefix, int limit, string? cursor, CancellationToken cancellationToken = default)
    {
        var (semaphores, next, refused) = await _names.DescribeAsync(tenant, namePrefix, limit, cursor, InspectAsync, cancellationToken).ConfigureAwait(false);
        return new SemaphorePage(semaphores, next, refused);
    }

    /// <summary>The permit when <paramref name="token"/> holds one, else why it does not.</summary>
    public async Task<PermitCheckResult> CheckAsync(LockName name, string token)
    {
        var keys = KeysOf(name);
        var values = (RedisResult[])(await _redis.EvalAsync(CheckScript, keys.All, Args(keys, token)).ConfigureAwait(false))!;
        if ((long)values[0] != 1)
        {
            return new PermitCheckResult(null, (LeaseEnd)(long)values[1]);
        }

        // {1, slot, fence, ms left, now, at, cap, limit, owner}
        var (left, now, at) = ((long)values[3], (long)values[4], (long)values[5]);
        return new PermitCheckResult(
            new PermitInfo(name.Key, (int)(long)values[1], (long)values[2], (int)(long)values[7], OwnerOf(values[8]), left, Ms(now + left), Ms(at), HoldCap(at, (long)values[6])),
            null);
    }

    /// <summary>
    /// Waits up to <paramref name="waitMs"/> until <paramref name="token"/> stops holding its permit, and answers at once
    /// when it does (released, force-released, expired; through any instance), with why; or, when the wait ran out, the
    /// permit as it is then. Bounded per instance by <see cref="LockOptions.MaxWatchers"/>, and per tenant by its share of it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="waitMs"/> is outside 0 .. <see cref="LockOptions.MaxWaitMs"/>.</exception>
    public Task<PermitCheckResult> WatchAsync(LockName name, string token, long waitMs, CancellationToken cancellationToken = default)
    {
        RequestErrors? errors = null;
        return LockRules.CheckWait(waitMs, _locks, ref errors)
            ? WatchAsync(name, token, TimeSpan.FromMilliseconds(waitMs), _recheck, cancellationToken)
            : throw errors!.ToException();
    }

    /// <summary>
    /// Keeps a permit alive for as long as its holder wants it (a stream's connection): renews it every third of its TTL
    /// and watches it in between. Returns why it ended, or null when <paramref name="stop"/> was cancelled first (the
    /// permit is still held and the caller releases it).
    /// </summary>
    public Task<LeaseEnd?> KeepAsync(LockName name, PermitLease lease, Func<PermitLease, ValueTask> renewed, CancellationToken stop) =>
        LeaseKeeping.KeepAsync(
            lease,
            _clock,
            (token, period, cancellation) => WatchAsync(name, token, period, period, cancellation),
            token => ExtendAsync(name, token, default),
            renewed,
            stop);

    /// <inheritdoc />
    public void Dispose() => _queues.Dispose();

    private SemaphoreKeys KeysOf(LockName name) => SemaphoreKeys.For(_options.KeyPrefix, name);

    // Every script's ARGV starts with the notice channel and the publish command.
    private RedisValue[] Args(SemaphoreKeys keys, params RedisValue[] more) => [keys.Channel, _redis.PublishCommand, .. more];

    private async Task<PermitCheckResult> WatchAsync(LockName name, string token, TimeSpan wait, TimeSpan recheck, CancellationToken cancellationToken)
    {
        var deadline = _clock.GetTimestamp() + (long)(wait.TotalSeconds * _clock.TimestampFrequency);
        var now = await CheckAsync(name, token).ConfigureAwait(false);
        if (now.Info is null || wait <= TimeSpan.Zero)
        {
            return now;
        }

        var keys = KeysOf(name);
        if (_queues.TryWatch(keys.Semaphore, _redis.ChannelOf(keys.Channel), name.Tenant, out var refused) is not { } watcher)
        {
            return new PermitCheckResult(null, null, refused);
        }

        try
        {
            // Subscribed before the next look, so a release after it cannot go unheard.
            await watcher.Queue.Subscription.WaitAsync(_redis.Timeout, cancellationToken).ConfigureAwait(false);
            while ((now = await CheckAsync(name, token).ConfigureAwait(false)).Info is { } info)
            {
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                if (remaining <= TimeSpan.Zero)
                {
                    break;
                }

                // This permit's own expiry (not the queue's timer, which follows the earliest permit) is when to look again.
                var expiry = TimeSpan.FromMilliseconds(info.TtlMs + 1);
                await watcher.WaitAsync(Min(remaining, recheck, expiry), cancellationToken).ConfigureAwait(false);
            }

            return now;
        }
        finally
        {
            _queues.Leave(watcher, acquired: false);
        }
    }

    // A waiter joins its semaphore's queue and tries whenever it is woken at the front (no waiter ahead with a limit as
    // high): by the places a release, force-release or expiry announces, by the queue's timer at the earliest expiry, by
    // the one ahead leaving with room left, or by its own re-check. Behind others it never tries, so those ahead keep their
    // turn; only a retry with an idempotency key, which may find its own permit, tries wherever it is.
    private async Task<PermitAcquireResult> WaitAsync(LockName name, SemaphoreKeys keys, string token, int limit, AcquireRequest request, CancellationToken cancellationToken)
    {
        var deadline = _clock.GetTimestamp() + (long)(request.WaitMs * (_clock.TimestampFrequency / 1000.0));
        var idempotent = request.IdempotencyKey is not null;
        if (_queues.TryJoin(keys.Semaphore, _redis.ChannelOf(keys.Channel), name.Tenant, idempotent, limit, out var refused) is not { } waiter)
        {
            return PermitAcquireResult.NoRoomToWait(refused);
        }

        var acquired = false;
        var heldAfter = -1;
        try
        {
            await waiter.Queue.Subscription.WaitAsync(_redis.Timeout, cancellationToken).ConfigureAwait(false);
            var attempt = idempotent || _queues.IsFront(waiter);
            var last = PermitAcquireResult.Full(0, 0, waited: true);
            var lastAt = _clock.GetTimestamp();
            while (true)
            {
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                if (attempt || remaining <= TimeSpan.Zero)
                {
                    var result = await TryAcquireAsync(name, keys, token, limit, request, waited: true).ConfigureAwait(false);
                    if (result.Status != AcquireStatus.Held)
                    {
                        acquired = result.Acquired;
                        if (acquired && result.EarliestExpiryMs >= 0)
                        {
                            // The queue's timer follows the earliest permit, which may now be this one.
                            _queues.WakeHeadAfter(waiter.Queue, result.EarliestExpiryMs);
                            heldAfter = result.Held;
                        }

                        await result.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                        return result;
                    }

                    (last, lastAt) = (result, _clock.GetTimestamp());
                    _queues.WakeHeadAfter(waiter.Queue, result.RetryAfterMs);
                    remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                }

                if (remaining <= TimeSpan.Zero)
                {
                    var since = (long)_clock.GetElapsedTime(lastAt).TotalMilliseconds;
                    return PermitAcquireResult.Full(Math.Max(0, last.RetryAfterMs - since), last.Held, waited: true);
                }

                var woken = await waiter.WaitAsync(remaining < _recheck ? remaining : _recheck, cancellationToken).ConfigureAwait(false);
                attempt = (woken && idempotent) || _queues.IsFront(waiter);
            }
        }
        finally
        {
            // With room left after this one (places freed while those behind slept), the next that can use it is woken.
            _queues.Leave(waiter, acquired, heldAfter);
        }
    }

    private async Task<PermitAcquireResult> TryAcquireAsync(LockName name, SemaphoreKeys keys, string token, int limit, AcquireRequest request, bool waited)
    {
        var args = request.Owner is null && request.IdempotencyKey is null && request.MaxHoldMs is null
            ? Args(keys, _fenceRetentionMs, token, request.TtlMs, limit)
            : Args(
                keys, _fenceRetentionMs, token, request.TtlMs, limit, request.Owner ?? string.Empty, request.IdempotencyKey ?? string.Empty,
                request.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString);
        RedisScriptRunner.Written written;
        try
        {
            written = await _redis.WriteAsync(keys.Semaphore, AcquireScript, keys.All, args).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            // The acquire may still run in Redis later, and its caller is told it failed: a release of its token sent right
            // behind it, on the same connection, runs after it, so no permit is left to a caller that was told "503".
            _ = ReleaseAbandonedAsync(name, token);
            throw;
        }

        var values = (RedisResult[])written.Result!;
        switch ((long)values[0])
        {
            case 1:
                // {1, slot, fence, now, earliest expiry ms, held now}
                var now = (long)values[3];
                var lease = new PermitLease(
                    name.Key, token, (int)(long)values[1], (long)values[2], limit, request.TtlMs, Ms(now + request.TtlMs), Ms(now), request.MaxHoldMs, request.Owner);
                try
                {
                    await _redis.ConfirmAsync(written).ConfigureAwait(false);
                }
                catch
                {
                    _ = ReleaseAbandonedAsync(name, token);
                    throw;
                }

                return PermitAcquireResult.Granted(lease, (int)(long)values[5], (long)values[4], replayed: false, waited, this, name);
            case 2:
                // {2, token, slot, fence, ms left, at, cap, limit, owner, expiry}: the original permit as it stands now.
                var (left, at) = ((long)values[4], (long)values[5]);
                var replay = new PermitLease(
                    name.Key, (string)values[1]!, (int)(long)values[2], (long)values[3], (int)(long)values[7], left, Ms((long)values[9]), Ms(at), HoldCap(at, (long)values[6]), OwnerOf(values[8]));
                return PermitAcquireResult.Granted(replay, held: 0, earliestExpiryMs: -1, replayed: true, waited, this, name);
            default:
                // {0, earliest expiry ms, held}
                return PermitAcquireResult.Full(Math.Max(0, (long)values[1]), (int)(long)values[2], waited);
        }
    }

    private async Task ReleaseAbandonedAsync(LockName name, string token)
    {
        // Redis may be down rather than slow: then keep trying for a while; the permit's TTL is the backstop.
        for (var attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                await ReleaseAsync(name, token).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _clock).ConfigureAwait(false);
            }
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b, TimeSpan c) => a < b ? (a < c ? a : c) : (b < c ? b : c);

    // Times in bodies are Redis's clock (ms from TIME inside the script), whichever instance answers.
    private static DateTimeOffset Ms(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    // The record keeps the hold cap as an absolute deadline (0: none); bodies give it as ms from acquiredAt.
    private static long? HoldCap(long at, long cap) => cap == 0 ? null : cap - at;

    private static string? OwnerOf(RedisResult value)
    {
        var owner = (string?)value;
        return string.IsNullOrEmpty(owner) ? null : owner;
    }
}
