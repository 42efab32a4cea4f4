using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// The lease engine: what every kind of lease shares, written once. Acquiring waits here, in one instance-wide set of
/// queues (<see cref="WaitQueues"/>), woken by the kind's notices through its <see cref="WakePolicy"/> and by a timer at
/// the expiry in the way; watches answer the moment a lease ends; a stream's lease is kept alive here; a lease obtained
/// by a caller that was told it failed is released here; listings page through a kind's key space here. Each kind's
/// store (<see cref="LeaseStore{TRequest, TLease, TInfo, TBusy}"/>) does its one-script operations. One engine per
/// process (the container's singleton), over the one <see cref="IConnectionMultiplexer"/>.
/// </summary>
public sealed class LeaseEngine : IDisposable
{
    /// <summary>The largest page of a listing (<see cref="ListAsync{TState}"/>).</summary>
    public const int MaxListLimit = NameLister.MaxLimit;

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly RedisOptions _redisOptions;
    private readonly TimeProvider _clock;
    private readonly WaitQueues _queues;

    // The re-check of a queue's head (Locks:RecheckMs), for what publishes nothing: keys deleted behind the service's
    // back. Hand-off on release, expiry and a shortened TTL never rely on it (notices and the expiry timer).
    private readonly TimeSpan _recheck;

    /// <summary>
    /// Creates the engine over a shared multiplexer. Its waits and watches count against <paramref name="bounds"/>, the
    /// instance's (the container's singleton, which streams count against too); without them, against bounds of its own.
    /// </summary>
    public LeaseEngine(IConnectionMultiplexer multiplexer, LeaseOptions limits, RedisOptions redis, TimeProvider? clock = null, WaitBounds? bounds = null)
    {
        _multiplexer = multiplexer;
        _redisOptions = redis;
        Limits = limits;
        _clock = clock ?? TimeProvider.System;
        Redis = new RedisScriptRunner(multiplexer, redis, _clock);
        Bounds = bounds ?? new WaitBounds(limits);
        _queues = new WaitQueues(multiplexer, Bounds, _clock);
        _recheck = TimeSpan.FromMilliseconds(limits.RecheckMs);
    }

    /// <summary>The limits every kind is held to.</summary>
    public LeaseOptions Limits { get; }

    /// <summary>What this instance keeps open at once: waits, watches, streams.</summary>
    public WaitBounds Bounds { get; }

    /// <summary>Requests of this instance waiting for a lease of any kind right now.</summary>
    public int WaitingCount => _queues.Waiting;

    /// <summary>Watches of this instance open right now.</summary>
    public int WatchingCount => _queues.Watching;

    internal RedisScriptRunner Redis { get; }

    internal TimeProvider Clock => _clock;

    /// <summary>Requests of this instance waiting for a lease of <paramref name="kind"/> right now.</summary>
    public int WaitingOf(LeaseKind kind) => _queues.WaitingOf(kind);

    /// <summary>
    /// Takes the lease if the kind's rules let the caller in; otherwise waits up to the request's <c>WaitMs</c>. Cancelling
    /// ends the wait, and a lease obtained at the moment of cancellation is released before this throws (a replay's is not:
    /// another request obtained it). A replay (an Idempotency-Key) answers the lease as it stands now: what remains of its
    /// TTL, and its expiry. Waiting counts against the instance's bound and the tenant's share.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks the kind's rules.</exception>
    public async Task<AcquireResult<TLease, TBusy>> AcquireAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseName name, TRequest request, CancellationToken cancellationToken = default)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        if (store.Validate(request) is { } errors)
        {
            throw errors.ToException();
        }

        request = request.WithTerms(request.Terms.WithDefaults(Limits));

        // The name is a parameter already: only the key is kept beside it (each local here is a field of every acquire's state machine).
        var key = store.RefOf(name).Key;
        var token = LeaseToken.New();
        if (request.Terms.WaitMs <= 0 || !_queues.HasQueue(key))
        {
            var first = await TryAcquireAsync(store, new LeaseRef(name, key), token, request, waiter: null).ConfigureAwait(false);
            if (first.Status != AcquireStatus.Held || request.Terms.WaitMs <= 0)
            {
                await first.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                return first;
            }
        }

        // What the kind keeps while a request waits (a waiting writer's mark) is a method of its own, so that the plain
        // acquire's state machine carries no field for it.
        var lease = new LeaseRef(name, key);
        var claim = store.ClaimWhileWaiting(lease, token, request);
        return claim is null
            ? await WaitAsync(store, lease, token, request, cancellationToken).ConfigureAwait(false)
            : await WaitClaimingAsync(store, lease, token, request, claim, cancellationToken).ConfigureAwait(false);
    }

    // A wait that keeps the kind's claim for as long as it lasts, and ends it however the wait ends.
    private async Task<AcquireResult<TLease, TBusy>> WaitClaimingAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseRef lease, string token, TRequest request, IWaitClaim claim, CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var acquired = false;
        try
        {
            var result = await WaitAsync(store, lease, token, request, cancellationToken).ConfigureAwait(false);
            acquired = result.Acquired;
            return result;
        }
        finally
        {
            await claim.EndAsync(acquired).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits up to <paramref name="waitMs"/> until <paramref name="token"/> stops holding its lease, and answers at once when
    /// it does (released, force-released, expired, a shortened TTL lapsing; through any instance), with why; or, when the
    /// wait ran out, the lease as it is then. Bounded per instance by <see cref="LeaseOptions.MaxWatchers"/>, and per tenant
    /// by its share of it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="waitMs"/> is outside 0 .. <see cref="LeaseOptions.MaxWaitMs"/>.</exception>
    public Task<CheckResult<TInfo>> WatchAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseName name, string token, long waitMs, CancellationToken cancellationToken = default)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        RequestErrors? errors = null;
        return LeaseRules.CheckWait(waitMs, Limits, ref errors)
            ? WatchAsync(store, store.RefOf(name), token, TimeSpan.FromMilliseconds(waitMs), _recheck, cancellationToken)
            : throw errors!.ToException();
    }

    /// <summary>
    /// Keeps a lease alive for as long as its holder wants it (a stream's connection): renews it every third of its TTL,
    /// and watches it in between so that a loss is known at once. Returns why the lease ended (one that vanished from
    /// Redis, a hold cap reached: <see cref="LeaseEnd.Expired"/>; Redis unreachable until the last granted expiry:
    /// <see cref="LeaseEnd.Unavailable"/>), or null when <paramref name="stop"/> was cancelled first, in which case the lease
    /// is still held and the caller releases it.
    /// </summary>
    public Task<LeaseEnd?> KeepAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseName name, TLease lease, Func<TLease, ValueTask> renewed, CancellationToken stop)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var leaseRef = store.RefOf(name);
        return LeaseKeeping.KeepAsync(
            lease,
            _clock,
            (token, period, cancellation) => WatchAsync(store, leaseRef, token, period, period, cancellation),
            token => store.ExtendAsync(leaseRef, token, default),
            renewed,
            stop);
    }

    /// <summary>
    /// One page of the held leases of <paramref name="tenant"/> whose names start with <paramref name="namePrefix"/>, for
    /// operators: at most <paramref name="limit"/> names, none twice, each as the kind's inspection shows it (never a
    /// token), and the cursor of the next page (null at the end). A page may hold fewer, even none, with a cursor. A cursor
    /// not issued for the same kind, tenant and prefix, or one whose masters changed since (a failover, a reshard), is
    /// refused (<see cref="LeasePage{TState}.CursorError"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is outside 1 .. <see cref="MaxListLimit"/>.</exception>
    /// <exception cref="LockStoreUnavailableException">No master is connected.</exception>
    public async Task<LeasePage<TState>> ListAsync<TState>(
        IListedLeases<TState> store, string tenant, string namePrefix, int limit, string? cursor, CancellationToken cancellationToken = default)
        where TState : class
    {
        var names = new NameLister(_multiplexer, store.KeyPrefix, _redisOptions);
        var (items, next, refused) = await names.DescribeAsync(tenant, namePrefix, limit, cursor, store.InspectAsync, cancellationToken).ConfigureAwait(false);
        return new LeasePage<TState>(items, next, refused);
    }

    /// <summary>Pings Redis; throws when it does not answer within the configured timeout.</summary>
    public Task PingAsync() => Redis.PingAsync();

    /// <inheritdoc />
    public void Dispose() => _queues.Dispose();

    // A waiter joins its lease's queue and tries whenever its kind's policy lets it (a lock's: at the head): when a notice
    // or the queue's timer wakes it, when the one ahead leaves, or at its own re-check. Otherwise it does not try: those
    // ahead keep their turn, and whatever frees the place wakes them. Only a retry with an idempotency key, which may find
    // its own lease, tries wherever it is.
    private async Task<AcquireResult<TLease, TBusy>> WaitAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseRef lease, string token, TRequest request, CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var terms = request.Terms;
        var deadline = _clock.GetTimestamp() + (long)(terms.WaitMs * (_clock.TimestampFrequency / 1000.0));
        var idempotent = terms.IdempotencyKey is not null;
        var waiter = _queues.TryJoin(
            store.Kind, store.Wake, lease.Key, Redis.ChannelOf(store.ChannelOf(lease.Key)), lease.Name.Tenant, idempotent, request.Claim, out var refused);
        if (waiter is null)
        {
            return AcquireResult<TLease, TBusy>.NoRoomToWait(refused);
        }

        var acquired = false;
        try
        {
            // Subscribed before this attempt, so a release after it cannot go unheard.
            await waiter.Queue.Subscription.WaitAsync(Redis.Timeout, cancellationToken).ConfigureAwait(false);
            var attempt = idempotent || _queues.MayTry(waiter);
            long retryAfterMs = 0;
            TBusy busy = default!;
            while (true)
            {
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);

                // At the deadline one last try, when the lease in the way should have run out by then.
                if (attempt || (remaining <= TimeSpan.Zero && retryAfterMs <= 0))
                {
                    var result = await TryAcquireAsync(store, lease, token, request, waiter).ConfigureAwait(false);
                    if (result.Status != AcquireStatus.Held)
                    {
                        acquired = result.Acquired;
                        await result.ReleaseIfCancelledAsync(cancellationToken).ConfigureAwait(false);
                        return result;
                    }

                    (retryAfterMs, busy) = (result.RetryAfterMs, result.Busy);
                    _queues.WakeHeadAfter(waiter.Queue, retryAfterMs);
                    remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                }

                if (remaining <= TimeSpan.Zero)
                {
                    return AcquireResult<TLease, TBusy>.Taken(Math.Max(retryAfterMs, 0), busy, waited: true);
                }

                var started = _clock.GetTimestamp();
                var signalled = await waiter.WaitAsync(remaining < _recheck ? remaining : _recheck, cancellationToken).ConfigureAwait(false);
                retryAfterMs -= (long)_clock.GetElapsedTime(started).TotalMilliseconds;
                attempt = (signalled && idempotent) || ((signalled || remaining > _recheck) && _queues.MayTry(waiter));
            }
        }
        finally
        {
            _queues.Leave(waiter, acquired);
        }
    }

    // Few locals live across an await here, on purpose: each one is a field of the state machine that every acquire
    // allocates, and the decoded attempt is large. Only a write that replicas must confirm takes a second await.
    // A waiter's grant also sets its queue's timer and tells its policy the kind's state (see WakeAfterGrant).
    private async Task<AcquireResult<TLease, TBusy>> TryAcquireAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseRef lease, string token, TRequest request, WaitQueues.Waiter? waiter)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        RedisScriptRunner.Written written;
        try
        {
            written = await store.SendAcquireAsync(lease, token, request).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            // The acquire may still run in Redis later (it may sit in a paused server's queue), and its caller is told it
            // failed: a release of its token is sent right behind it, on the same connection, so Redis runs it after the
            // acquire and no lease is left to a caller that was told "503".
            _ = ReleaseAbandonedAsync(store, lease, token);
            throw;
        }

        var attempt = store.DecodeAcquire(lease, token, request, written);
        return attempt.Outcome == AttemptOutcome.Granted && written.Server is not null
            ? await ConfirmedAsync(store, lease, token, attempt, waiter).ConfigureAwait(false)
            : ResultOf(store, lease, attempt, waiter);
    }

    // A grant that replicas must confirm (Redis:ReplicaAcks): when they do not, the lease is released and the caller told.
    private async Task<AcquireResult<TLease, TBusy>> ConfirmedAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseRef lease, string token, LeaseAttempt<TLease, TBusy> attempt, WaitQueues.Waiter? waiter)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        try
        {
            await Redis.ConfirmAsync(attempt.Written).ConfigureAwait(false);
        }
        catch
        {
            // Sent behind the write on the same connection, so Redis runs it next. The 503 does not wait for it: it may
            // queue behind another request's WAIT, and the answer must stay within the bound.
            _ = ReleaseAbandonedAsync(store, lease, token);
            throw;
        }

        return ResultOf(store, lease, attempt, waiter);
    }

    private AcquireResult<TLease, TBusy> ResultOf<TLease, TBusy>(ILeaseReleaser store, LeaseRef lease, in LeaseAttempt<TLease, TBusy> attempt, WaitQueues.Waiter? waiter)
        where TLease : class, IKeptLease
    {
        var waited = waiter is not null;
        if (attempt.Outcome == AttemptOutcome.Taken)
        {
            return AcquireResult<TLease, TBusy>.Taken(attempt.RetryAfterMs, attempt.Busy, waited);
        }

        if (waiter is not null)
        {
            WakeAfterGrant(waiter, attempt.NextLookMs, attempt.StateAfter);
        }

        // A replay is the same lease, so the same handle: disposing it releases the lease like disposing the original.
        return AcquireResult<TLease, TBusy>.Granted(attempt.Lease!, replayed: attempt.Outcome == AttemptOutcome.Replayed, waited, store, lease.Name);
    }

    // A waiter that obtained the lease: if the lease it now holds vanishes, its kind's next look is when the head must look
    // again (a lock's TTL, a semaphore's earliest expiry), and its policy learns the kind's state for whom its leaving wakes.
    private void WakeAfterGrant(WaitQueues.Waiter waiter, long nextLookMs, long stateAfter)
    {
        if (nextLookMs >= 0)
        {
            _queues.WakeHeadAfter(waiter.Queue, nextLookMs);
            waiter.StateAfter = stateAfter;
        }
    }

    private async Task<CheckResult<TInfo>> WatchAsync<TRequest, TLease, TInfo, TBusy>(
        LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseRef lease, string token, TimeSpan wait, TimeSpan recheck, CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var deadline = _clock.GetTimestamp() + (long)(wait.TotalSeconds * _clock.TimestampFrequency);
        var now = await store.CheckAsync(lease, token).ConfigureAwait(false);
        if (now.Info is null || wait <= TimeSpan.Zero)
        {
            return now;
        }

        var watcher = _queues.TryWatch(store.Kind, store.Wake, lease.Key, Redis.ChannelOf(store.ChannelOf(lease.Key)), lease.Name.Tenant, out var refused);
        if (watcher is null)
        {
            return new CheckResult<TInfo>(null, null, refused);
        }

        try
        {
            // Subscribed before the next look, so a release after it cannot go unheard.
            await watcher.Queue.Subscription.WaitAsync(Redis.Timeout, cancellationToken).ConfigureAwait(false);
            while ((now = await store.CheckAsync(lease, token).ConfigureAwait(false)).Info is { } info)
            {
                var remaining = _clock.GetElapsedTime(_clock.GetTimestamp(), deadline);
                if (remaining <= TimeSpan.Zero)
                {
                    break;
                }

                // The lease's own expiry (an expiry publishes nothing) is when to look again, whatever else wakes it first.
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

    private async Task ReleaseAbandonedAsync(ILeaseReleaser store, LeaseRef lease, string token)
    {
        // Redis may be down rather than slow: then keep trying for a while; the lease's TTL is the backstop.
        for (var attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                await store.SendReleaseAsync(lease, token).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _clock).ConfigureAwait(false);
            }
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b, TimeSpan c) => a < b ? (a < c ? a : c) : (b < c ? b : c);
}

/// <summary>One page of a listing of a kind's held leases.</summary>
/// <typeparam name="TState">One name's state as inspection shows it.</typeparam>
/// <param name="Items">The held names' states, none twice; never a token.</param>
/// <param name="Cursor">The next page's cursor, or null when the listing is complete.</param>
/// <param name="CursorError">When the cursor given was refused: why (and <paramref name="Items"/> is empty).</param>
public sealed record LeasePage<TState>(IReadOnlyList<TState> Items, string? Cursor, string? CursorError)
    where TState : class;
