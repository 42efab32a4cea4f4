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
/// </summary>
internal sealed class WaitQueues : IDisposable
{
    private readonly ISubscriber _subscriber;
    private readonly int _maxWaiters;
    private readonly int _maxWatchers;
    private readonly object _gate = new();
    private readonly Dictionary<string, KeyQueue> _queues = new(StringComparer.Ordinal);

    // A key's next subscription waits for its previous unsubscription, so an UNSUBSCRIBE can never
    // land after (and cancel) the SUBSCRIBE of a queue that started meanwhile.
    private readonly Dictionary<string, Task> _unsubscribing = new(StringComparer.Ordinal);
    private int _waiting;
    private int _watching;

    public WaitQueues(IConnectionMultiplexer multiplexer, int maxWaiters, int maxWatchers)
    {
        _subscriber = multiplexer.GetSubscriber();
        _maxWaiters = maxWaiters;
        _maxWatchers = maxWatchers;

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

    /// <summary>Enqueues a waiter at the tail of the key's queue, or returns null when the instance is full.</summary>
    public Waiter? TryJoin(string lockKey, RedisChannel channel, bool idempotent)
    {
        lock (_gate)
        {
            if (_waiting >= _maxWaiters)
            {
                return null;
            }

            _waiting++;
            var queue = QueueOf(lockKey, channel);
            var waiter = new Waiter(queue, idempotent, watcher: false);
            waiter.Node = queue.Waiters.AddLast(waiter);
            return waiter;
        }
    }

    /// <summary>Adds a watch of the key, or returns null when the instance has as many watches as it allows.</summary>
    public Waiter? TryWatch(string lockKey, RedisChannel channel)
    {
        lock (_gate)
        {
            if (_watching >= _maxWatchers)
            {
                return null;
            }

            _watching++;
            var queue = QueueOf(lockKey, channel);
            var watcher = new Waiter(queue, idempotent: false, watcher: true);
            watcher.Node = queue.Watchers.AddLast(watcher);
            return watcher;
        }
    }

    // Under _gate.
    private KeyQueue QueueOf(string lockKey, RedisChannel channel)
    {
        if (!_queues.TryGetValue(lockKey, out var queue))
        {
            queue = new KeyQueue(lockKey, channel);
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

    /// <summary>Removes a waiter or watch. A waiter that leaves without the lock passes a wake-up it may have consumed on to the next.</summary>
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
                queue.Watchers.Remove(waiter.Node!);
            }
            else
            {
                _waiting--;
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
            else if (wasHead && !acquired)
            {
                queue.Waiters.First?.Value.Signal();
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
                queue.Timer = new Timer(static s => ((KeyQueue)s!).Owner!.WakeHead((KeyQueue)s!), queue, due, Timeout.InfiniteTimeSpan);
                queue.Owner = this;
            }
            else
            {
                queue.Timer.Change(due, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void WakeHead(KeyQueue queue)
    {
        lock (_gate)
        {
            queue.WakeHeadAndWatchers();
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

    internal sealed class KeyQueue(string lockKey, RedisChannel channel)
    {
        public string LockKey { get; } = lockKey;

        public RedisChannel Channel { get; } = channel;

        public LinkedList<Waiter> Waiters { get; } = new();

        public LinkedList<Waiter> Watchers { get; } = new();

        public Task Subscription { get; set; } = Task.CompletedTask;

        public Action<RedisChannel, RedisValue>? Handler { get; set; }

        public Timer? Timer { get; set; }

        public WaitQueues? Owner { get; set; }

        public bool Closed { get; set; }

        // Under the owner's gate.
        public void WakeHeadAndWatchers()
        {
            Waiters.First?.Value.Signal();
            foreach (var watcher in Watchers)
            {
                watcher.Signal();
            }
        }
    }

    internal sealed class Waiter(KeyQueue queue, bool idempotent, bool watcher)
    {
        // An auto-reset event: a wake-up that arrives while the waiter is busy trying is kept, not lost.
        private readonly SemaphoreSlim _signal = new(0, 1);

        public KeyQueue Queue { get; } = queue;

        public bool Idempotent { get; } = idempotent;

        public bool Watcher { get; } = watcher;

        public LinkedListNode<Waiter>? Node { get; set; }

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
