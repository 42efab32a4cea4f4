namespace LockService.Client;

/// <summary>
/// A held lock (or, as a <see cref="PermitHandle"/>, a held permit of a semaphore: the same rules through
/// <c>/semaphores</c>). While it is held the handle renews it (every TTL/3) and watches it (a waiting
/// <c>GET /locks/{key}/{token}?waitMs=</c>, within the service's Locks:MaxWaitMs), so that <see cref="LostToken"/> fires within a second of a loss, whoever
/// caused it: an operator's force-release, the hold cap, Redis losing it. When the service cannot be reached, the
/// handle counts the lock lost (<see cref="LeaseEndReason.Unavailable"/>) just before the last expiry it was granted,
/// so the holder stops while the lock is still its own. Every grant is timed by the <c>ttlMs</c> it carries (for a
/// replayed acquire, what remains of the lease), never by the TTL asked for.
/// Disposing releases the lock; disposing twice does nothing more.
/// </summary>
public class LockHandle : IAsyncDisposable
{
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);

    private readonly LockClient _client;
    private readonly LeaseKind _kind;
    private readonly TimeProvider _time = TimeProvider.System;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _running;
    private readonly CancellationTokenSource _deadline = new();
    private readonly Lock _granting = new();
    private readonly Task _renewing;
    private readonly Task _watching;
    private TimeSpan _interval;
    private long _heldUntil;
    private long _grantSent;
    private Lease _lease;
    private int _lossReason = -1;
    private int _disposed;

    // grantedAt: a timestamp taken before the request that granted the lease left; mayHaveWaited: false when that request
    // did not wait in the server (no waitMs), so that the grant came right after it left.
    internal LockHandle(LockClient client, Lease lease, long grantedAt, bool mayHaveWaited = true)
    {
        _client = client;
        _kind = LeaseKind.Of(lease);
        _lease = lease;
        _running = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, _lost.Token);
        _deadline.Token.Register(() => Lose(CapReached(_lease) ? LeaseEndReason.Expired : LeaseEndReason.Unavailable));
        _grantSent = grantedAt;
        var firstRenewal = Granted(grantedAt, lease.TtlMs, mayHaveWaited);
        _renewing = Task.Run(() => RenewAsync(firstRenewal));
        _watching = Task.Run(WatchAsync);
    }

    /// <summary>The handle of <paramref name="lease"/>'s kind: a permit's, a read/write lease's, a leadership's, or a lock's.</summary>
    internal static LockHandle For(LockClient client, Lease lease, long grantedAt, bool mayHaveWaited) => lease switch
    {
        Permit permit => new PermitHandle(client, permit, grantedAt, mayHaveWaited),
        RwLease rw => new RwLockHandle(client, rw, grantedAt, mayHaveWaited),
        Leadership leadership => new CampaignHandle(client, leadership, grantedAt, mayHaveWaited),
        _ => new LockHandle(client, lease, grantedAt, mayHaveWaited),
    };

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

    /// <summary>
    /// How long the lock is surely still this handle's if no renewal comes: until just before the last granted expiry,
    /// when the handle would count it lost (<see cref="LeaseEndReason.Unavailable"/>). Zero once lost or released.
    /// </summary>
    public TimeSpan TimeLeft => LossReason is null && Volatile.Read(ref _disposed) == 0 && _time.GetTimestamp() is var now && Volatile.Read(ref _heldUntil) is var until && until > now
        ? _time.GetElapsedTime(now, until)
        : TimeSpan.Zero;

    /// <summary>Raised after each renewal (on the handle's own task; a handler must not block), when <see cref="TimeLeft"/> has grown.</summary>
    public event EventHandler? Renewed;

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

    /// <summary>
    /// Extends the lease now, out of the renewals' turn, with the parameter its kind adds (an election's <c>value</c>: a
    /// proclaim), and times the grant as a renewal's. Not extended (with the reason) when the lease was lost: the handle
    /// counts it lost then, as a renewal would.
    /// </summary>
    private protected async Task<ExtendResult> ExtendNowAsync((string Name, string? Value) kindParameter, CancellationToken cancellationToken)
    {
        var sent = _time.GetTimestamp();
        var result = await _client.ExtendAsync(_kind, Key, Token, null, cancellationToken, kindParameter);
        if (!result.Extended)
        {
            Lose(result.EndReason ?? LeaseEndReason.Unknown);
            return result;
        }

        Grant(sent, result.Lease);
        return result;
    }

    /// <summary>
    /// Takes <paramref name="lease"/>, granted by a request sent at <paramref name="sent"/>, unless a request sent later
    /// was granted first (a renewal and a proclaim may cross: the later one's value and expiry stand); the time until
    /// the next renewal.
    /// </summary>
    private TimeSpan Grant(long sent, Lease lease)
    {
        TimeSpan untilRenewal;
        lock (_granting)
        {
            if (sent < _grantSent)
            {
                return _interval;
            }

            _grantSent = sent;
            Volatile.Write(ref _lease, lease);
            untilRenewal = Granted(sent, lease.TtlMs, mayHaveWaited: false);
        }

        Renewed?.Invoke(this, EventArgs.Empty);
        return untilRenewal;
    }

    /// <summary>With a hold cap, an expiry at the cap's end is the cap running out, not the service being gone.</summary>
    private static bool CapReached(Lease lease) =>
        lease.MaxHoldMs is { } cap && lease.AcquiredAt.AddMilliseconds(cap) <= lease.ExpiresAt.AddMilliseconds(1);

    /// <summary>
    /// Times a grant of <paramref name="ttlMs"/> (what the service said is left: for a replayed acquire, the rest of the
    /// lease) whose request was sent at <paramref name="sentAt"/>: arms the deadline just before that expiry and returns
    /// how long until the next renewal, a third of it. Both are counted from when the grant was made, which lies between
    /// the request's send and the answer's arrival (now). A request that does not wait (extend, an acquire without
    /// waitMs) is granted as it arrives, so its send is the safe start (the service counted from later). One that may
    /// have waited (for a held lock, seconds perhaps) was granted at the end of its wait, just before its answer: the
    /// start is then taken the margin before the arrival (unless it was sent later than that), the margin that also
    /// covers timer lateness and a slow stop: a tenth of the TTL, at most a second.
    /// </summary>
    private TimeSpan Granted(long sentAt, long ttlMs, bool mayHaveWaited)
    {
        var margin = TimeSpan.FromMilliseconds(Math.Min(1000, ttlMs / 10));
        var sinceSent = _time.GetElapsedTime(sentAt);
        var sinceGrant = mayHaveWaited && sinceSent > margin ? margin : sinceSent;
        var ttl = TimeSpan.FromMilliseconds(ttlMs);
        var left = ttl - margin - sinceGrant;
        _interval = TimeSpan.FromMilliseconds(Math.Max(1, ttlMs / 3));
        var now = _time.GetTimestamp();
        Volatile.Write(ref _heldUntil, now + (long)(Math.Max(0, left.TotalSeconds) * _time.TimestampFrequency));
        try
        {
            _deadline.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
        catch (ObjectDisposedException)
        {
        }

        var untilRenewal = _interval - sinceGrant;
        return untilRenewal > TimeSpan.Zero ? untilRenewal : TimeSpan.Zero;
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

    private async Task RenewAsync(TimeSpan wait)
    {
        var token = _running.Token;
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

                wait = Grant(sent, result.Lease);
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
        while (!token.IsCancellationRequested)
        {
            var wait = _client.WatchWait;
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
            catch (LockServiceException ex) when (_client.ShrinkWatchWait(wait, ex))
            {
                // The service's Locks:MaxWaitMs is below the wait asked: watch again at once, within it.
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
    internal PermitHandle(LockClient client, Permit permit, long grantedAt, bool mayHaveWaited = true)
        : base(client, permit, grantedAt, mayHaveWaited)
    {
    }

    /// <summary>The permit's lane, 0..<see cref="Limit"/>-1; its fencing token increases per (key, slot).</summary>
    public int Slot => Permit.Slot;

    /// <summary>The limit the permit was acquired with.</summary>
    public int Limit => Permit.Limit;

    /// <summary>The permit as last granted (acquire, then each renewal).</summary>
    public Permit Permit => (Permit)Lease;
}

/// <summary>
/// A held lease of a read/write lock: renewed, watched, lost and released exactly as <see cref="LockHandle"/> holds a
/// lock, with the lease's <see cref="Mode"/> besides.
/// </summary>
public sealed class RwLockHandle : LockHandle
{
    internal RwLockHandle(LockClient client, RwLease lease, long grantedAt, bool mayHaveWaited)
        : base(client, lease, grantedAt, mayHaveWaited)
    {
    }

    /// <summary>Read (shared with other readers) or write (alone).</summary>
    public RwLockMode Mode => RwLease.Mode;

    /// <summary>The lease as last granted (acquire, then each renewal).</summary>
    public RwLease RwLease => (RwLease)Lease;
}

/// <summary>
/// The leadership of an election, held as <see cref="LockHandle"/> holds a lock: renewed and watched while this
/// candidate leads, <see cref="LockHandle.LostToken"/> fired within a second of losing it (forced out, its hold cap
/// reached, the service out of reach until just before its last granted expiry), and disposing resigns. Its
/// <see cref="LockHandle.FencingToken"/> is the <see cref="Term"/>.
/// </summary>
public sealed class CampaignHandle : LockHandle
{
    internal CampaignHandle(LockClient client, Leadership leadership, long grantedAt, bool mayHaveWaited)
        : base(client, leadership, grantedAt, mayHaveWaited)
    {
    }

    /// <summary>The election's name.</summary>
    public string Name => Key;

    /// <summary>The term: strictly increasing per election name; fence the resource the leader writes with it.</summary>
    public long Term => FencingToken;

    /// <summary>The value as last granted (campaign, proclaim, renewal).</summary>
    public string Value => Leadership.Value;

    /// <summary>The leadership as last granted.</summary>
    public Leadership Leadership => (Leadership)Lease;

    /// <summary>
    /// Proclaims <paramref name="value"/> (observers see it) and extends the term as a renewal does; false (and the
    /// handle counts the leadership lost, with the reason) when this candidate no longer leads.
    /// </summary>
    public async Task<bool> ProclaimAsync(string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        return (await ExtendNowAsync(("value", value), cancellationToken)).Extended;
    }

    /// <summary>Resigns (once): the next candidate leads within milliseconds. As <see cref="LockHandle.ReleaseAsync"/>.</summary>
    public Task<ReleaseResult?> ResignAsync(CancellationToken cancellationToken = default) => ReleaseAsync(cancellationToken);
}
