using LockService.Core.Semaphores;
using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>
/// The waiters and watches of one service instance, one FIFO queue of waiters and a set of watches per lock key,
/// each key sharing one Redis pub/sub subscription to the lock's release channel. A watch is woken by everything
/// that can end a lease (release, force-release, the expiry timer, a shortened TTL) and looks for itself. A release wakes only the head of the queue (no thundering
/// herd); a waiter that loses the race to another instance stays at the head. A lock that expires publishes
/// nothing, so each queue also has a timer set to the holder's remaining TTL that wakes the head then. An extend
/// that shortens the TTL announces itself, and the head looks again: its failed attempt re-arms the timer to the
/// new TTL (read after the extend, so no stale, longer TTL can overwrite it).
/// A semaphore's queue holds waiters with a <see cref="Waiter.Limit"/>: a notice of places freed
/// (<see cref="SemaphoreMessages.Freed"/>) wakes as many waiters at the front as places were freed, in arrival order,
/// passing over those whose own limit the semaphore's count still reaches; a waiter that takes a place with room left
/// wakes the next.
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
    private int _waiting;
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

    public int Waiting => Volatile.Read(ref _waiting);

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
    /// (the instance's, the tenant's share). A semaphore's waiter gives its <paramref name="limit"/>; a lock's is 0.
    /// </summary>
    public Waiter? TryJoin(string lockKey, RedisChannel channel, string tenant, bool idempotent, int limit, out NoRoom refused)
    {
        lock (_gate)
        {
            if ((refused = _bounds.TryTakeWaiter(tenant)) != NoRoom.None)
            {
                return null;
            }

            _waiting++;
            var queue = QueueOf(lockKey, channel);
            var waiter = new Waiter(queue, tenant, idempotent, watcher: false, limit);
            waiter.Node = queue.Waiters.AddLast(waiter);
            return waiter;
        }
    }

    /// <summary>Adds a watch of the key for <paramref name="tenant"/>, or returns null and which bound is full.</summary>
    public Waiter? TryWatch(string lockKey, RedisChannel channel, string tenant, out NoRoom refused)
    {
        lock (_gate)
        {
            if ((refused = _bounds.TryTakeWatcher(tenant)) != NoRoom.None)
            {
                return null;
            }

            _watching++;
            var queue = QueueOf(lockKey, channel);
            var watcher = new Waiter(queue, tenant, idempotent: false, watcher: true);
            watcher.Node = queue.Watchers.AddLast(watcher);
            return watcher;
        }
    }

    // Under _gate.
    private KeyQueue QueueOf(string lockKey, RedisChannel channel)
    {
        if (!_queues.TryGetValue(lockKey, out var queue))
        {
            queue = new KeyQueue(this, lockKey, channel);
            _queues.Add(lockKey, queue);
            queue.Subscription = SubscribeAsync(queue, _unsubscribing.GetValueOrDefault(lockKey));
        }

        return queue;
    }

    public bool IsHead(Waiter waiter)
    {
        lock (_gate)
        {
            return waiter.Queue.Waiters.First == waiter.Node;
        }
    }

    /// <summary>
    /// True when no waiter ahead of this one has a limit as high as its own: none of them can be let in before it, so it
    /// may try now. For waiters of one limit (and a lock's, all 0) that is the head.
    /// </summary>
    public bool IsFront(Waiter waiter)
    {
        lock (_gate)
        {
            return IsFront(waiter.Node!);
        }
    }

    // Under _gate.
    private static bool IsFront(LinkedListNode<Waiter> node)
    {
        for (var earlier = node.Previous; earlier is not null; earlier = earlier.Previous)
        {
            if (earlier.Value.Limit >= node.Value.Limit)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Removes a waiter or watch. A waiter that leaves without the lock passes a wake-up it may have consumed on to the next.
    /// A semaphore's waiter that leaves with a permit gives <paramref name="heldAfter"/>, the count it left: the next waiter
    /// that count lets in is woken, so that places freed while it slept are not left unused.
    /// </summary>
    public void Leave(Waiter waiter, bool acquired, int heldAfter = -1)
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
                _waiting--;
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
            else if (wasHead && !acquired && waiter.Limit == 0)
            {
                queue.Waiters.First?.Value.Signal();
            }
            else if (acquired && heldAfter >= 0 && !waiter.Pending)
            {
                queue.WakeWaiters(1, heldAfter);
            }
            else if (acquired && heldAfter >= 0)
            {
                // A wake-up that reached it while it was busy trying, and that it will not use. Either a notice, which may
                // have been for a place freed after it took its own: the count that notice gave, when lower, decides who
                // is next. Or the expiry timer's (expiries publish nothing), fired between its try and now: the head that
                // is left looks, and its try re-arms the timer if nothing expired yet; without this, of several places
                // expiring a few ms apart, all but the first would reach their waiters only at their deadlines.
                queue.WakeWaiters(1, Math.Min(heldAfter, queue.LastFreedHeld));
                queue.Waiters.First?.Value.Signal();
            }
            else if (!acquired && waiter.Limit > 0)
            {
                // A semaphore's waiter may have been one of several woken: its wake-up goes to the first waiter that can
                // use what it could (a limit as high), else to the head.
                var next = queue.Waiters.FirstOrDefault(w => w.Limit >= waiter.Limit) ?? queue.Waiters.First?.Value;
                next?.Signal();
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
            if (message == LockMessages.Acquired)
            {
                // Only a retry with an idempotency key can gain from an acquire: it may be its own.
                foreach (var waiter in queue.Waiters)
                {
                    if (waiter.Idempotent)
                    {
                        waiter.Signal();
                    }
                }

                return;
            }

            if (SemaphoreMessages.TryParseFreed(message, out var places, out var held))
            {
                queue.LastFreedHeld = held;
                queue.WakeEligible(places, held);
                return;
            }

            // Released or Shortened: the head tries (and, if still held, re-arms its timer to the remaining TTL);
            // every watch looks.
            queue.WakeHeadAndWatchers();
        }
    }

    private void OnConnectionChanged(object? sender, ConnectionFailedEventArgs e)
    {
        lock (_gate)
        {
            foreach (var queue in _queues.Values)
            {
                queue.WakeHeadAndWatchers();
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

    internal sealed class KeyQueue(WaitQueues owner, string lockKey, RedisChannel channel)
    {
        public string LockKey { get; } = lockKey;

        public RedisChannel Channel { get; } = channel;

        public LinkedList<Waiter> Waiters { get; } = new();

        public LinkedList<Waiter> Watchers { get; } = new();

        public Task Subscription { get; set; } = Task.CompletedTask;

        public Action<RedisChannel, RedisValue>? Handler { get; set; }

        public ITimer? Timer { get; set; }

        public bool Closed { get; set; }

        /// <summary>The count of held permits the last notice of freed places gave (under the owner's gate).</summary>
        public int LastFreedHeld { get; set; } = int.MaxValue;

        /// <summary>The expiry timer's wake-up: the head tries, every watch looks.</summary>
        public void WakeHeadUnderGate()
        {
            lock (owner._gate)
            {
                WakeHeadAndWatchers();
            }
        }

        // Under the owner's gate.
        public void WakeHeadAndWatchers()
        {
            Waiters.First?.Value.Signal();
            WakeWatchers();
        }

        // Under the owner's gate. Places freed with the semaphore now at held: the first waiters at the front that the count
        // lets in (their limit above it), as many as places, in arrival order; every watch looks.
        public void WakeEligible(int places, int held)
        {
            WakeWaiters(places, held);
            WakeWatchers();
        }

        // Under the owner's gate. Only a waiter at the front (none ahead with a limit as high) is woken: a notice can arrive
        // after the waiters it freed places for took them and left, and then wakes those behind them, so a woken waiter
        // with another ahead that can use the same place would take it first, and the one ahead would sleep to its
        // deadline. The one ahead wakes the next when it leaves.
        public void WakeWaiters(int places, int held)
        {
            var ahead = 0;
            for (var node = Waiters.First; node is not null && places > 0; node = node.Next)
            {
                var limit = node.Value.Limit;
                if (limit > held && limit > ahead)
                {
                    node.Value.Signal();
                    places--;
                }

                ahead = Math.Max(ahead, limit);
            }
        }

        private void WakeWatchers()
        {
            foreach (var watcher in Watchers)
            {
                watcher.Signal();
            }
        }
    }

    internal sealed class Waiter(KeyQueue queue, string tenant, bool idempotent, bool watcher, int limit = 0)
    {
        // An auto-reset event: a wake-up that arrives while the waiter is busy trying is kept, not lost.
        private readonly SemaphoreSlim _signal = new(0, 1);

        public KeyQueue Queue { get; } = queue;

        /// <summary>The tenant whose share of the instance's bound it counts against (empty: the instance's bound only).</summary>
        public string Tenant { get; } = tenant;

        public bool Idempotent { get; } = idempotent;

        public bool Watcher { get; } = watcher;

        /// <summary>A semaphore waiter's limit: it can be let in while fewer permits than this are held. 0 for a lock's.</summary>
        public int Limit { get; } = limit;

        public LinkedListNode<Waiter>? Node { get; set; }

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
