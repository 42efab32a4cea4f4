using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// The waiters and watches of one service instance: per lease key, a FIFO queue of waiters and a set of watches, sharing
/// one Redis pub/sub subscription to the lease's channel. Whom a notice wakes, and who may try, is the kind's
/// <see cref="WakePolicy"/>; a watch is woken by everything that can end a lease and looks for itself. A lease that
/// expires publishes nothing, so each queue also has a timer, set by its waiters to when the lease in their way runs out,
/// that wakes the head and every watch then. One per instance (the engine's), so that its bounds
/// (<see cref="WaitBounds"/>) hold for every kind together.
/// </summary>
internal sealed class WaitQueues : IDisposable
{
    private readonly ISubscriber _subscriber;
    private readonly WaitBounds _bounds;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private readonly Dictionary<string, KeyQueue> _queues = new(StringComparer.Ordinal);

    // A key's next subscription waits for its previous unsubscription, so an UNSUBSCRIBE can never
    // land after (and cancel) the SUBSCRIBE of a queue that started meanwhile.
    private readonly Dictionary<string, Task> _unsubscribing = new(StringComparer.Ordinal);
    private readonly int[] _waiting = new int[Enum.GetValues<LeaseKind>().Length];
    private int _watching;

    /// <summary>Queues over <paramref name="multiplexer"/>'s subscriptions, counting against <paramref name="bounds"/>, timed by <paramref name="clock"/>.</summary>
    public WaitQueues(IConnectionMultiplexer multiplexer, WaitBounds bounds, TimeProvider clock)
    {
        _subscriber = multiplexer.GetSubscriber();
        _bounds = bounds;
        _clock = clock;

        // Messages published while the subscription connection was down are lost: every head retries
        // at once when a connection comes back, and when one fails (so its waiters get a fast answer).
        multiplexer.ConnectionRestored += OnConnectionChanged;
        multiplexer.ConnectionFailed += OnConnectionChanged;
    }

    /// <summary>Requests of this instance waiting for a lease of <paramref name="kind"/> right now.</summary>
    public int WaitingOf(LeaseKind kind) => Volatile.Read(ref _waiting[(int)kind]);

    /// <summary>Requests of this instance waiting for a lease of any kind right now.</summary>
    public int Waiting
    {
        get
        {
            var sum = 0;
            foreach (var kind in _waiting)
            {
                sum += kind;
            }

            return sum;
        }
    }

    public int Watching => Volatile.Read(ref _watching);

    public bool HasQueue(string lockKey)
    {
        lock (_gate)
        {
            return _queues.ContainsKey(lockKey);
        }
    }

    /// <summary>
    /// Enqueues a waiter of <paramref name="tenant"/> at the tail of the key's queue, or returns null and which bound is full
    /// (the instance's, the tenant's share). Its <paramref name="claim"/> is what the kind's policy knows it by.
    /// </summary>
    public Waiter? TryJoin(LeaseKind kind, WakePolicy policy, string lockKey, RedisChannel channel, string tenant, bool idempotent, long claim, out NoRoom refused)
    {
        lock (_gate)
        {
            if ((refused = _bounds.TryTakeWaiter(tenant)) != NoRoom.None)
            {
                return null;
            }

            _waiting[(int)kind]++;
            var queue = QueueOf(policy, lockKey, channel);
            var waiter = new Waiter(queue, kind, tenant, idempotent, watcher: false, claim);
            waiter.Node = queue.Waiters.AddLast(waiter);
            return waiter;
        }
    }

    /// <summary>Adds a watch of the key for <paramref name="tenant"/>, or returns null and which bound is full.</summary>
    public Waiter? TryWatch(LeaseKind kind, WakePolicy policy, string lockKey, RedisChannel channel, string tenant, out NoRoom refused)
    {
        lock (_gate)
        {
            if ((refused = _bounds.TryTakeWatcher(tenant)) != NoRoom.None)
            {
                return null;
            }

            _watching++;
            var queue = QueueOf(policy, lockKey, channel);
            var watcher = new Waiter(queue, kind, tenant, idempotent: false, watcher: true, claim: 0);
            watcher.Node = queue.Watchers.AddLast(watcher);
            return watcher;
        }
    }

    // Under _gate.
    private KeyQueue QueueOf(WakePolicy policy, string lockKey, RedisChannel channel)
    {
        if (!_queues.TryGetValue(lockKey, out var queue))
        {
            queue = new KeyQueue(this, policy, lockKey, channel);
            _queues.Add(lockKey, queue);
            queue.Subscription = SubscribeAsync(queue, _unsubscribing.GetValueOrDefault(lockKey));
        }

        return queue;
    }

    /// <summary>Whether the waiter may try now, by its kind's policy (a lock's: it is the head).</summary>
    public bool MayTry(Waiter waiter)
    {
        lock (_gate)
        {
            return waiter.Queue.Policy.MayTry(waiter);
        }
    }

    /// <summary>
    /// Removes a waiter or watch. Whom a waiter's leaving wakes is its kind's policy's (<see cref="WakePolicy.OnLeave"/>),
    /// told whether it leaves with the lease (and the kind's state its grant reported: <see cref="Waiter.StateAfter"/>).
    /// </summary>
    public void Leave(Waiter waiter, bool acquired)
    {
        Task? unsubscribe = null;
        lock (_gate)
        {
            var queue = waiter.Queue;
            var wasHead = !waiter.Watcher && queue.Waiters.First == waiter.Node;
            if (waiter.Watcher)
            {
                _watching--;
                _bounds.ReturnWatcher(waiter.Tenant);
                queue.Watchers.Remove(waiter.Node!);
            }
            else
            {
                _waiting[(int)waiter.Kind]--;
                _bounds.ReturnWaiter(waiter.Tenant);
                queue.Waiters.Remove(waiter.Node!);
            }

            if (queue.Waiters.Count == 0 && queue.Watchers.Count == 0)
            {
                _queues.Remove(queue.LockKey);
                queue.Timer?.Dispose();
                queue.Closed = true;
                unsubscribe = UnsubscribeAsync(queue);
                _unsubscribing[queue.LockKey] = unsubscribe;
            }
            else if (!waiter.Watcher)
            {
                queue.Policy.OnLeave(queue, waiter, wasHead, acquired);
            }
        }

        unsubscribe?.ContinueWith(
            (t, state) =>
            {
                var key = (string)state!;
                lock (_gate)
                {
                    if (_unsubscribing.TryGetValue(key, out var current) && current == t)
                    {
                        _unsubscribing.Remove(key);
                    }
                }
            },
            waiter.Queue.LockKey,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>Wakes the queue's head when the lock is expected to have expired (plus a millisecond, since PTTL rounds down).</summary>
    public void WakeHeadAfter(KeyQueue queue, long delayMs)
    {
        lock (_gate)
        {
            if (queue.Closed)
            {
                return;
            }

            var due = TimeSpan.FromMilliseconds(Math.Clamp(delayMs + 1, 1, int.MaxValue));
            if (queue.Timer is null)
            {
                // The queue knows its owner from its construction: the timer may fire before this line returns.
                queue.Timer = _clock.CreateTimer(static s => ((KeyQueue)s!).WakeHeadUnderGate(), queue, due, Timeout.InfiniteTimeSpan);
            }
            else
            {
                queue.Timer.Change(due, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void OnMessage(KeyQueue queue, RedisValue message)
    {
        lock (_gate)
        {
            queue.Policy.OnNotice(queue, message);
        }
    }

    private void OnConnectionChanged(object? sender, ConnectionFailedEventArgs e)
    {
        lock (_gate)
        {
            foreach (var queue in _queues.Values)
            {
                queue.Policy.OnTimer(queue);
            }
        }
    }

    private async Task SubscribeAsync(KeyQueue queue, Task? previousUnsubscribe)
    {
        if (previousUnsubscribe is not null)
        {
            await previousUnsubscribe.ConfigureAwait(false);
        }

        await _subscriber.SubscribeAsync(queue.Channel, queue.Handler ??= (_, message) => OnMessage(queue, message)).ConfigureAwait(false);
    }

    private async Task UnsubscribeAsync(KeyQueue queue)
    {
        try
        {
            await queue.Subscription.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The subscription never happened; the unsubscribe below is still harmless.
        }

        try
        {
            if (queue.Handler is not null)
            {
                await _subscriber.UnsubscribeAsync(queue.Channel, queue.Handler).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // Redis is gone: its side of the subscription went with the connection.
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var queue in _queues.Values)
            {
                queue.Timer?.Dispose();
            }
        }
    }

    internal sealed class KeyQueue(WaitQueues owner, WakePolicy policy, string lockKey, RedisChannel channel)
    {
        /// <summary>Whom the notices of this lease's kind wake.</summary>
        public WakePolicy Policy { get; } = policy;

        public string LockKey { get; } = lockKey;

        public RedisChannel Channel { get; } = channel;

        public LinkedList<Waiter> Waiters { get; } = new();

        public LinkedList<Waiter> Watchers { get; } = new();

        public Task Subscription { get; set; } = Task.CompletedTask;

        public Action<RedisChannel, RedisValue>? Handler { get; set; }

        public ITimer? Timer { get; set; }

        public bool Closed { get; set; }

        /// <summary>What the kind's policy last learned of the lease from a notice (a semaphore's count), under the owner's gate.</summary>
        public long LastNoticeState { get; set; } = long.MaxValue;

        /// <summary>The expiry timer's wake-up: whoever the kind's policy says tries (a lock's: the head), every watch looks.</summary>
        public void WakeHeadUnderGate()
        {
            lock (owner._gate)
            {
                Policy.OnTimer(this);
            }
        }

        // Under the owner's gate.
        public void WakeHeadAndWatchers()
        {
            Waiters.First?.Value.Signal();
            WakeWatchers();
        }

        // Under the owner's gate.
        public void WakeWatchers()
        {
            foreach (var watcher in Watchers)
            {
                watcher.Signal();
            }
        }
    }

    internal sealed class Waiter(KeyQueue queue, LeaseKind kind, string tenant, bool idempotent, bool watcher, long claim)
    {
        // An auto-reset event: a wake-up that arrives while the waiter is busy trying is kept, not lost.
        private readonly SemaphoreSlim _signal = new(0, 1);

        public KeyQueue Queue { get; } = queue;

        public LeaseKind Kind { get; } = kind;

        /// <summary>The tenant whose share of the instance's bound it counts against (empty: the instance's bound only).</summary>
        public string Tenant { get; } = tenant;

        public bool Idempotent { get; } = idempotent;

        public bool Watcher { get; } = watcher;

        /// <summary>What the kind's policy knows the waiter by (a semaphore's waiter: its limit).</summary>
        public long Claim { get; } = claim;

        public LinkedListNode<Waiter>? Node { get; set; }

        /// <summary>When it obtained the lease: the kind's state after the grant (a semaphore's count), for its policy; -1: none.</summary>
        public long StateAfter { get; set; } = -1;

        /// <summary>Woken and not yet past its wait: a try is coming.</summary>
        public bool Pending => _signal.CurrentCount > 0;

        public void Signal()
        {
            if (_signal.CurrentCount == 0)
            {
                try
                {
                    _signal.Release();
                }
                catch (SemaphoreFullException)
                {
                    // Already signalled by a racing Signal: one pending wake-up is all a waiter needs.
                }
            }
        }

        public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
            _signal.WaitAsync(timeout, cancellationToken);
    }
}
