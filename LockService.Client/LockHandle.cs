namespace LockService.Client;

/// <summary>
/// A held lock (or, as a <see cref="PermitHandle"/>, a held permit of a semaphore: the same rules through
/// <c>/semaphores</c>). While it is held the handle renews it (every TTL/3) and watches it (a waiting
/// <c>GET /locks/{key}/{token}?waitMs=</c>), so that <see cref="LostToken"/> fires within a second of a loss, whoever
/// caused it: an operator's force-release, the hold cap, Redis losing it. When the service cannot be reached, the
/// handle counts the lock lost (<see cref="LeaseEndReason.Unavailable"/>) just before the last expiry it was granted,
/// measured from before that grant's request left, so the holder stops while the lock is still its own.
/// Disposing releases the lock; disposing twice does nothing more.
/// </summary>
public class LockHandle : IAsyncDisposable
{
    // A watch is one long request; its wait stays well under HttpClient's usual timeouts and the service's MaxWaitMs.
    private static readonly TimeSpan WatchWait = TimeSpan.FromSeconds(25);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);

    private readonly LockClient _client;
    private readonly LeaseKind _kind;
    private readonly TimeProvider _time = TimeProvider.System;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _running;
    private readonly CancellationTokenSource _deadline = new();
    private readonly TimeSpan _interval;
    private readonly Task _renewing;
    private readonly Task _watching;
    private Lease _lease;
    private int _lossReason = -1;
    private int _disposed;

    internal LockHandle(LockClient client, Lease lease, long grantedAt)
    {
        _client = client;
        _kind = LeaseKind.Of(lease);
        _lease = lease;
        _interval = TimeSpan.FromMilliseconds(Math.Max(1, lease.TtlMs / 3));
        _running = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, _lost.Token);
        _deadline.Token.Register(() => Lose(CapReached(_lease) ? LeaseEndReason.Expired : LeaseEndReason.Unavailable));
        ArmDeadline(grantedAt, lease.TtlMs);
        _renewing = Task.Run(RenewAsync);
        _watching = Task.Run(WatchAsync);
    }

    /// <summary>The lock's name.</summary>
    public string Key => _lease.Key;

    /// <summary>The secret that proves ownership.</summary>
    public string Token => _lease.Token;

    /// <summary>Pass this to the protected resource with every write; it can refuse a smaller one than it has seen.</summary>
    public long FencingToken => _lease.FencingToken;

    /// <summary>The lease as last granted (acquire, then each renewal).</summary>
    public Lease Lease => Volatile.Read(ref _lease);

    /// <summary>Fires when the lock is lost (see <see cref="LossReason"/>); stop the work it protects.</summary>
    public CancellationToken LostToken => _lost.Token;

    /// <summary>Why the lock was lost, or null while it is held (or was released by this handle).</summary>
    public LeaseEndReason? LossReason => Volatile.Read(ref _lossReason) is var reason and >= 0 ? (LeaseEndReason)reason : null;

    /// <summary>Releases the lock (once); the outcome, or null when the handle was already released or the lock lost.</summary>
    public async Task<ReleaseResult?> ReleaseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return null;
        }

        await _stop.CancelAsync();
        await _deadline.CancelAsync();
        await Task.WhenAll(_renewing, _watching);
        if (LossReason is not null)
        {
            return null;
        }

        return await _client.ReleaseAsync(_kind, Key, Token, cancellationToken);
    }

    /// <summary>Releases the lock if still held; errors (the service gone) are swallowed: the TTL frees it then.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await ReleaseAsync();
        }
        catch (LockServiceException)
        {
            // The lock expires at its TTL; nothing more a disposer can do.
        }
        finally
        {
            _running.Dispose();
        }
    }

    /// <summary>With a hold cap, an expiry at the cap's end is the cap running out, not the service being gone.</summary>
    private static bool CapReached(Lease lease) =>
        lease.MaxHoldMs is { } cap && lease.AcquiredAt.AddMilliseconds(cap) <= lease.ExpiresAt.AddMilliseconds(1);

    /// <summary>
    /// Fires just before the granted expiry, counted from before the grant's request was sent (the service counted
    /// from later). The margin covers timer lateness and a slow stop: a tenth of the TTL, at most a second.
    /// </summary>
    private void ArmDeadline(long grantedAt, long ttlMs)
    {
        var margin = TimeSpan.FromMilliseconds(Math.Min(1000, ttlMs / 10));
        var left = TimeSpan.FromMilliseconds(ttlMs) - margin - _time.GetElapsedTime(grantedAt);
        try
        {
            _deadline.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Lose(LeaseEndReason reason)
    {
        if (Volatile.Read(ref _disposed) == 1 || Interlocked.CompareExchange(ref _lossReason, (int)reason, -1) != -1)
        {
            return;
        }

        try
        {
            _lost.Cancel();
        }
        catch (AggregateException)
        {
            // A holder's callback failed; the loss stands, and the holder's own code reports its failure.
        }
    }

    private async Task RenewAsync()
    {
        var token = _running.Token;
        var wait = _interval;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(wait, _time, token);
                var sent = _time.GetTimestamp();

                // A renewal that hangs must not hold up the next try; the deadline is what declares the loss.
                using var bound = CancellationTokenSource.CreateLinkedTokenSource(token);
                bound.CancelAfter(_interval > MaxRetryDelay ? _interval : MaxRetryDelay);
                var result = await _client.ExtendAsync(_kind, Key, Token, null, bound.Token);
                if (!result.Extended)
                {
                    Lose(result.EndReason ?? LeaseEndReason.Unknown);
                    return;
                }

                Volatile.Write(ref _lease, result.Lease);
                ArmDeadline(sent, result.Lease.TtlMs);
                wait = TimeSpan.FromMilliseconds(Math.Max(1, Math.Min(_interval.TotalMilliseconds, result.Lease.TtlMs / 3.0)));
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is LockServiceException or OperationCanceledException)
            {
                // Unreachable, 503, 429, a hung request: try again soon, until the deadline says the lock is gone.
                wait = RetryDelay((ex as LockServiceThrottledException)?.RetryAfter);
            }
        }
    }

    private async Task WatchAsync()
    {
        var token = _running.Token;
        var wait = _client.Http.Timeout == Timeout.InfiniteTimeSpan || _client.Http.Timeout > WatchWait * 2 ? WatchWait : _client.Http.Timeout / 2;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var status = await _client.WatchAsync(_kind, Key, Token, wait, token);
                if (!status.Held)
                {
                    Lose(status.EndReason ?? LeaseEndReason.Unknown);
                    return;
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (LockServiceException ex)
            {
                // 429 (the instance watches too many) or the service gone: renewals still guard the lock meanwhile.
                try
                {
                    await Task.Delay(RetryDelay((ex as LockServiceThrottledException)?.RetryAfter), _time, token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private TimeSpan RetryDelay(TimeSpan? asked)
    {
        var delay = asked ?? _interval / 4;
        return delay > MaxRetryDelay ? MaxRetryDelay : delay < TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : delay;
    }
}

/// <summary>
/// A held permit of a counting semaphore: renewed, watched, lost and released exactly as <see cref="LockHandle"/> holds
/// a lock, with the permit's <see cref="Slot"/> and <see cref="Limit"/> besides.
/// </summary>
public sealed class PermitHandle : LockHandle
{
    internal PermitHandle(LockClient client, Permit permit, long grantedAt)
        : base(client, permit, grantedAt)
    {
    }

    /// <summary>The permit's lane, 0..<see cref="Limit"/>-1; its fencing token increases per (key, slot).</summary>
    public int Slot => Permit.Slot;

    /// <summary>The limit the permit was acquired with.</summary>
    public int Limit => Permit.Limit;

    /// <summary>The permit as last granted (acquire, then each renewal).</summary>
    public Permit Permit => (Permit)Lease;
}
