using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.Elections;

/// <summary>
/// Who leads an election, or that nobody does, as an observer is told it.
/// </summary>
/// <param name="Name">The election's name.</param>
/// <param name="Leader">The leader, or null when nobody leads.</param>
public sealed record ElectionState(string Name, ElectionLeader? Leader)
{
    /// <summary>The event id of the no-leader state.</summary>
    public const string NoLeaderId = "none";

    /// <summary>
    /// The name of this state, the same on every instance (it comes only from what Redis holds): the term and a hash of the
    /// value, or <see cref="NoLeaderId"/>. Two states with one id are the same to an observer, whatever their TTLs.
    /// </summary>
    public string Id { get; } = Leader is null ? NoLeaderId : IdOf(Leader.Term, Leader.Value);

    // FNV-1a over the value's UTF-16 code units: stable across processes and instances (string.GetHashCode is not), and the
    // id stays short whatever the value's length. A value changed and changed back within one term is the same state.
    private static string IdOf(long term, string value)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in value)
        {
            hash = (hash ^ (byte)c) * 1099511628211UL;
            hash = (hash ^ (byte)(c >> 8)) * 1099511628211UL;
        }

        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{term}.{hash:x16}");
    }
}

/// <summary>
/// The observers of elections on one service instance. Observers of one name share one <see cref="Topic"/>: one pub/sub
/// subscription to the election's channel and one reader, which reads the state once per notice and hands it to all of
/// them, so 10,000 observers of a name cost Redis what one does. The reader also reads when the leader's lease is due to
/// expire (an expiry publishes nothing; one timer per name, set to the TTL it read), when a connection to Redis comes
/// back (notices sent while it was down are lost), and every <see cref="HeartbeatPeriod"/> (a key deleted by hand
/// publishes nothing either). Notices that arrive while a read is running cost one more read, not one each, and that read
/// starts after the last of them, so the state handed out last is the current one. Observers are counted against
/// <see cref="ElectionOptions.MaxObservers"/>, and a tenant against its share of it.
/// </summary>
public sealed class ElectionObservers : IDisposable
{
    /// <summary>
    /// How often every observer is woken with nothing new (a heartbeat its stream turns into a comment, well within the 15 s
    /// that keep proxies from closing an idle stream), and every name is read again. One timer for the whole instance.
    /// </summary>
    public static readonly TimeSpan HeartbeatPeriod = TimeSpan.FromSeconds(10);

    // How soon a name whose read failed (Redis unreachable, slow) is read again: soon enough that observers catch up within
    // a fraction of a second of Redis answering, seldom enough not to hammer a Redis that is coming back.
    private static readonly TimeSpan RetryAfterFailure = TimeSpan.FromMilliseconds(250);

    // How long after a reconnection every name is read a second time (see OnConnectionRestored).
    private static readonly TimeSpan ReadAgainAfterReconnect = TimeSpan.FromMilliseconds(500);

    private readonly ISubscriber _subscriber;
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly ElectionStore _store;
    private readonly WaitBounds.Bound _bound;
    private readonly TimeProvider _clock;
    private readonly object _gate = new();
    private readonly Dictionary<string, Topic> _topics = new(StringComparer.Ordinal);

    // A channel's next subscription waits for its previous unsubscription, so an UNSUBSCRIBE can never land after (and
    // cancel) the SUBSCRIBE of a topic that started meanwhile.
    private readonly Dictionary<string, Task> _unsubscribing = new(StringComparer.Ordinal);
    private readonly ITimer _heartbeatTimer;
    private TaskCompletionSource _heartbeat = NewSignal();
    private long _reads;

    /// <summary>
    /// Observers over <paramref name="multiplexer"/>'s subscriptions, reading through <paramref name="store"/>, at most
    /// <see cref="ElectionOptions.MaxObservers"/> at once and a tenant its share (<see cref="LeaseOptions.TenantShare"/>).
    /// </summary>
    public ElectionObservers(IConnectionMultiplexer multiplexer, ElectionStore store, ElectionOptions options, TimeProvider? clock = null)
    {
        _multiplexer = multiplexer;
        _subscriber = multiplexer.GetSubscriber();
        _store = store;
        _bound = new WaitBounds.Bound(options.MaxObservers, store.Limits.TenantShare(options.MaxObservers));
        _clock = clock ?? TimeProvider.System;
        _heartbeatTimer = _clock.CreateTimer(static s => ((ElectionObservers)s!).Beat(), this, HeartbeatPeriod, HeartbeatPeriod);
        multiplexer.ConnectionRestored += OnConnectionRestored;
    }

    /// <summary>Observers open on this instance right now.</summary>
    public int Count => _bound.Count;

    /// <summary>Names with at least one observer on this instance: each is one subscription and one reader.</summary>
    public int Names
    {
        get
        {
            lock (_gate)
            {
                return _topics.Count;
            }
        }
    }

    /// <summary>How many times this instance has read an election's state for its observers.</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>
    /// Opens an observer of <paramref name="name"/> within its tenant's share of the bound (no tenant: the instance's
    /// bound only), or returns null and which bound is full. <paramref name="lastEventId"/> is the id of the state the client
    /// saw last (<c>Last-Event-ID</c>): the current state is handed out first only if it differs. Dispose it to close it.
    /// </summary>
    public ElectionObserver? TryObserve(LeaseName name, string? lastEventId, out NoRoom refused)
    {
        var channel = _store.KeysOf(name).Channel;
        lock (_gate)
        {
            if ((refused = _bound.TryTake(name.Tenant)) != NoRoom.None)
            {
                return null;
            }

            if (!_topics.TryGetValue(channel, out var topic))
            {
                topic = new Topic(this, name, channel, _unsubscribing.GetValueOrDefault(channel));
                _topics.Add(channel, topic);
                topic.Start();
            }

            topic.Observers++;
            return new ElectionObserver(this, topic, name.Tenant, lastEventId);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _multiplexer.ConnectionRestored -= OnConnectionRestored;
        _heartbeatTimer.Dispose();
        lock (_gate)
        {
            foreach (var topic in _topics.Values)
            {
                topic.Close();
            }

            _topics.Clear();
        }

        _heartbeat.TrySetResult();
    }

    /// <summary>Completes at the next heartbeat.</summary>
    internal Task Heartbeat => Volatile.Read(ref _heartbeat).Task;

    internal TimeProvider Clock => _clock;

    internal void Leave(Topic topic, string tenant)
    {
        Task unsubscribe;
        lock (_gate)
        {
            _bound.Return(tenant);
            if (--topic.Observers > 0)
            {
                return;
            }

            _topics.Remove(topic.Channel);
            topic.Close();
            unsubscribe = topic.Completion;
            _unsubscribing[topic.Channel] = unsubscribe;
        }

        unsubscribe.ContinueWith(
            (t, state) =>
            {
                var channel = (string)state!;
                lock (_gate)
                {
                    if (_unsubscribing.TryGetValue(channel, out var current) && current == t)
                    {
                        _unsubscribing.Remove(channel);
                    }
                }
            },
            topic.Channel,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    // Swapped before it is completed, so an observer woken by it waits on the next one.
    private void Beat()
    {
        Interlocked.Exchange(ref _heartbeat, NewSignal()).TrySetResult();
        ReadAll();
    }

    // Notices sent while a connection was down are lost: read every name now, and once more a little later, in case the
    // subscriptions are restored after the interactive connection (a change between this read and their return would
    // otherwise wait for the heartbeat's re-read).
    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        ReadAll();
        _ = Task.Delay(ReadAgainAfterReconnect, _clock).ContinueWith(static (_, s) => ((ElectionObservers)s!).ReadAll(), this, TaskScheduler.Default);
    }

    private void ReadAll()
    {
        lock (_gate)
        {
            foreach (var topic in _topics.Values)
            {
                topic.MarkDirty();
            }
        }
    }

    // Continuations run on the thread pool: completing a change must not run 10,000 observers' writes on the reader.
    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>What the observers of one election know: the state last read, and the task that completes when it changes.</summary>
    /// <param name="State">The state last read, or null before the first read.</param>
    /// <param name="ReadAt">When it was read (the instance's timestamp), to age its TTL for observers who join later.</param>
    /// <param name="Changed">Completes when a state with another id (or a failure before the first) replaces this one.</param>
    /// <param name="Failure">Why the first read failed, while no state has been read.</param>
    internal sealed record Snapshot(ElectionState? State, long ReadAt, TaskCompletionSource Changed, Exception? Failure);

    /// <summary>The observers of one election on this instance: one subscription, one reader, one expiry timer.</summary>
    internal sealed class Topic
    {
        private readonly ElectionObservers _owner;
        private readonly Task? _previousUnsubscribe;

        // An auto-reset flag: a notice that arrives while a read runs is kept, and costs one more read, not one each.
        private readonly SemaphoreSlim _dirty = new(0, 1);
        private readonly ITimer _timer;
        private readonly Action<RedisChannel, RedisValue> _handler;
        private Task? _subscription;
        private Snapshot _current;
        private volatile bool _closed;

        public Topic(ElectionObservers owner, LeaseName name, string channel, Task? previousUnsubscribe)
        {
            _owner = owner;
            Name = name;
            Channel = channel;
            _previousUnsubscribe = previousUnsubscribe;
            _handler = (_, _) => MarkDirty();
            _timer = owner._clock.CreateTimer(static s => ((Topic)s!).MarkDirty(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _current = new Snapshot(null, 0, NewSignal(), null);
        }

        public LeaseName Name { get; }

        public string Channel { get; }

        /// <summary>Observers of this name on this instance (under the owner's gate).</summary>
        public int Observers { get; set; }

        /// <summary>What the observers know now. Written only by the reader, read by every observer.</summary>
        public Snapshot Current
        {
            get => Volatile.Read(ref _current);
            private set => Volatile.Write(ref _current, value);
        }

        /// <summary>Completes when the reader has stopped and the subscription is gone (after <see cref="Close"/>).</summary>
        public Task Completion { get; private set; } = Task.CompletedTask;

        // Under the owner's gate. The reader's first wait is truly asynchronous, so nothing of it runs under the gate.
        public void Start()
        {
            Completion = RunAsync();
            _dirty.Release();
        }

        public void MarkDirty()
        {
            if (_dirty.CurrentCount == 0)
            {
                try
                {
                    _dirty.Release();
                }
                catch (SemaphoreFullException)
                {
                    // Marked by a racing notice: one pending read covers both.
                }
            }
        }

        // Under the owner's gate.
        public void Close()
        {
            _closed = true;
            _timer.Dispose();
            MarkDirty();
        }

        // The reader owns the subscription from start to end, so no subscription it makes can outlive the topic.
        private async Task RunAsync()
        {
            await ReadLoopAsync().ConfigureAwait(false);
            if (_subscription is null)
            {
                return;
            }

            try
            {
                await _subscription.WaitAsync(_owner._store.Timeout).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // It never happened, or it is late: the unsubscribe below is harmless either way.
            }

            try
            {
                await _owner._subscriber.UnsubscribeAsync(_owner._store.SubscriptionOf(Name), _handler).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Redis is gone: its side of the subscription went with the connection.
            }
        }

        private async Task ReadLoopAsync()
        {
            var subscribed = false;
            while (true)
            {
                await _dirty.WaitAsync().ConfigureAwait(false);
                if (_closed)
                {
                    return;
                }

                try
                {
                    if (!subscribed)
                    {
                        // Subscribed before the first read, so a change after that read cannot go unheard. A subscription
                        // that timed out is awaited again, not sent twice (its handler would then be called twice per notice).
                        if (_previousUnsubscribe is not null)
                        {
                            await _previousUnsubscribe.ConfigureAwait(false);
                        }

                        if (_subscription is null || _subscription.IsFaulted || _subscription.IsCanceled)
                        {
                            _subscription = _owner._subscriber.SubscribeAsync(_owner._store.SubscriptionOf(Name), _handler);
                        }

                        await _subscription.WaitAsync(_owner._store.Timeout).ConfigureAwait(false);
                        subscribed = true;
                    }

                    Interlocked.Increment(ref _owner._reads);
                    var leader = await _owner._store.InspectAsync(Name).ConfigureAwait(false);
                    Apply(new ElectionState(Name.Key, leader));
                }
                catch (Exception ex)
                {
                    // Observers keep the last state they were handed (there is nothing newer to tell), and an observer still
                    // waiting for its first is told Redis could not be read; the name is read again shortly.
                    Fail(ex);
                }
            }
        }

        private void Apply(ElectionState state)
        {
            var current = Current;
            var changed = current.State?.Id != state.Id;

            // The same state read again (a lease extended, a heartbeat) replaces the TTL that observers who join later get,
            // and wakes nobody.
            Current = new Snapshot(state, _owner._clock.GetTimestamp(), changed ? NewSignal() : current.Changed, null);
            if (changed)
            {
                current.Changed.TrySetResult();
            }

            // The leader's expiry publishes nothing: read again just after it (PTTL rounds down). A lease extended meanwhile
            // is found still held, and the timer is set to its new expiry.
            Arm(state.Leader is { } leader ? TimeSpan.FromMilliseconds(Math.Clamp(leader.TtlMs + 1, 1, int.MaxValue)) : Timeout.InfiniteTimeSpan);
        }

        private void Fail(Exception failure)
        {
            var current = Current;
            if (current.State is null)
            {
                Current = current with { Changed = NewSignal(), Failure = failure };
                current.Changed.TrySetResult();
            }

            Arm(RetryAfterFailure);
        }

        private void Arm(TimeSpan due)
        {
            try
            {
                _timer.Change(due, Timeout.InfiniteTimeSpan);
            }
            catch (ObjectDisposedException)
            {
                // Closed while reading: nobody observes this name any more.
            }
        }
    }
}

/// <summary>
/// One observer of an election: it is handed the current state whenever it differs from the last one it was handed, and
/// a heartbeat when there is nothing new. It never queues: an observer that is slow to take states skips those that were
/// replaced meanwhile and gets the current one, so the last state it is handed is always the current state.
/// </summary>
public sealed class ElectionObserver : IDisposable
{
    private readonly ElectionObservers _owner;
    private readonly ElectionObservers.Topic _topic;
    private readonly string _tenant;
    private int _disposed;

    internal ElectionObserver(ElectionObservers owner, ElectionObservers.Topic topic, string tenant, string? lastEventId)
    {
        _owner = owner;
        _topic = topic;
        _tenant = tenant;
        LastId = lastEventId;
    }

    /// <summary>The state this instance knows for the observer's election now, or null before its first read.</summary>
    public ElectionState? Current => _topic.Current.State;

    /// <summary>The id of the last state this observer was handed (at first, the client's <c>Last-Event-ID</c>).</summary>
    public string? LastId { get; private set; }

    /// <summary>
    /// Waits until this instance knows the election's state (the read that follows its subscription; at once when the name
    /// already had observers here). Throws what Redis answered when it could not be read, or a <see cref="TimeoutException"/>
    /// past <paramref name="timeout"/>: the caller answers 503 before its stream begins.
    /// </summary>
    public async Task ReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = _owner.Clock.GetTimestamp() + (long)(timeout.TotalSeconds * _owner.Clock.TimestampFrequency);
        while (true)
        {
            var snapshot = _topic.Current;
            if (snapshot.State is not null)
            {
                return;
            }

            if (snapshot.Failure is { } failure)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }

            var left = _owner.Clock.GetElapsedTime(_owner.Clock.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException("The election's state could not be read from Redis in time.");
            }

            await snapshot.Changed.Task.WaitAsync(left, _owner.Clock, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for what to send next: the current state when its id differs from <see cref="LastId"/> (its TTL aged to now),
    /// or null at a heartbeat when nothing changed.
    /// </summary>
    public async Task<ElectionState?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var snapshot = _topic.Current;
            if (snapshot.State is { } state && state.Id != LastId)
            {
                LastId = state.Id;
                return Aged(state, snapshot.ReadAt);
            }

            var heartbeat = _owner.Heartbeat;
            var woken = await Task.WhenAny(snapshot.Changed.Task, heartbeat).WaitAsync(cancellationToken).ConfigureAwait(false);
            if (woken == heartbeat && _topic.Current.State?.Id == LastId)
            {
                return null;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _owner.Leave(_topic, _tenant);
        }
    }

    // A state read a while ago (the name had observers already) shows the TTL left now, by this instance's clock.
    private ElectionState Aged(ElectionState state, long readAt)
    {
        if (state.Leader is not { } leader)
        {
            return state;
        }

        var elapsed = (long)_owner.Clock.GetElapsedTime(readAt).TotalMilliseconds;
        return elapsed <= 0 ? state : state with { Leader = leader with { TtlMs = Math.Max(0, leader.TtlMs - elapsed) } };
    }
}
