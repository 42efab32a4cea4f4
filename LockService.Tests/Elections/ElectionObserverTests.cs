using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;
using static LockService.Tests.Elections.ElectionTesting;

namespace LockService.Tests.Elections;

/// <summary>
/// Observers of elections over a real Redis, with two instances (two connections, each with its own observers): the first
/// state is the current one, every change made on any instance reaches every observer, an expiry is seen as no leader,
/// bursts converge on the current state, Last-Event-ID resumes, and observers of one name share one subscription and one read.
/// </summary>
public sealed class ElectionObserverTests(ElectionFixture fixture) : IClassFixture<ElectionFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    private readonly List<IAsyncDisposable> _cleanup = [];

    private ElectionStore Store => fixture.Store;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var item in Enumerable.Reverse(_cleanup))
        {
            await item.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_first_state_is_the_current_one_then_every_change_follows_in_order()
    {
        var name = ElectionFixture.NewName(nameof(The_first_state_is_the_current_one_then_every_change_follows_in_order));
        var instance = await NewInstanceAsync();
        using var observer = Observe(instance, name);
        await observer.ReadyAsync(Deadline, default);

        Assert.Null((await NextAsync(observer))!.Leader);

        var lease = (await Store.CampaignAsync(name, Campaign(10_000, value: "a"))).Lease!;
        var elected = (await NextAsync(observer))!;
        Assert.Equal(lease.Term, elected.Leader!.Term);
        Assert.Equal("a", elected.Leader.Value);
        Assert.Equal(name.Key, elected.Name);
        Assert.InRange(elected.Leader.TtlMs, 1, 10_000);

        await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: "b"));
        var proclaimed = (await NextAsync(observer))!;
        Assert.Equal(lease.Term, proclaimed.Leader!.Term);
        Assert.Equal("b", proclaimed.Leader.Value);
        Assert.NotEqual(elected.Id, proclaimed.Id);

        await Store.ResignAsync(name, lease.Token);
        var resigned = (await NextAsync(observer))!;
        Assert.Null(resigned.Leader);
        Assert.Equal(ElectionState.NoLeaderId, resigned.Id);
    }

    [Fact]
    public async Task A_change_made_through_another_instance_reaches_observers_of_both()
    {
        var name = ElectionFixture.NewName(nameof(A_change_made_through_another_instance_reaches_observers_of_both));
        var one = await NewInstanceAsync();
        var two = await NewInstanceAsync();
        var onOne = await LogAsync(one, name);
        var onTwo = await LogAsync(two, name);

        var lease = (await two.Store.CampaignAsync(name, Campaign(10_000, value: "from-two"))).Lease!;
        await onOne.WaitForAsync(s => s.Leader?.Term == lease.Term, "instance one's observer to see the term campaigned on two");
        await onTwo.WaitForAsync(s => s.Leader?.Term == lease.Term, "instance two's observer to see its own term");

        var seenOnOne = await onOne.WaitForAsync(s => s.Leader?.Term == lease.Term, "instance one's observer to see the term");
        var seenOnTwo = await onTwo.WaitForAsync(s => s.Leader?.Term == lease.Term, "instance two's observer to see the term");
        await one.Store.ForceAsync(name);
        await onOne.WaitForAsync(s => s.Leader is null, "instance one's observer to see no leader after a force", after: seenOnOne);
        await onTwo.WaitForAsync(s => s.Leader is null, "instance two's observer to see no leader after a force on one", after: seenOnTwo);
    }

    [Fact]
    public async Task An_expiry_publishes_nothing_and_is_still_seen_as_no_leader_soon_after_it()
    {
        var name = ElectionFixture.NewName(nameof(An_expiry_publishes_nothing_and_is_still_seen_as_no_leader_soon_after_it));
        var instance = await NewInstanceAsync();
        var log = await LogAsync(instance, name);

        var lease = (await Store.CampaignAsync(name, Campaign(400))).Lease!;
        var leading = await log.WaitForAsync(s => s.Leader?.Term == lease.Term, "the observer to see the short term");
        var seen = await log.WaitForAsync(s => s.Leader is null, "the observer to see no leader after the expiry", after: leading);

        // Well within the heartbeat's 10 s re-read: the expiry timer, not the heartbeat, found it (the contract's 100 ms is
        // measured in docs/performance.md; a loaded test machine gets more room here).
        var late = seen.At - lease.ExpiresAt;
        Assert.True(late < TimeSpan.FromSeconds(1), $"no leader seen {late.TotalMilliseconds:0} ms after the expiry");
    }

    [Fact]
    public async Task A_shortened_ttl_moves_the_expiry_observers_wait_for()
    {
        var name = ElectionFixture.NewName(nameof(A_shortened_ttl_moves_the_expiry_observers_wait_for));
        var instance = await NewInstanceAsync();
        var log = await LogAsync(instance, name);
        var lease = (await Store.CampaignAsync(name, Campaign(60_000))).Lease!;
        var leading = await log.WaitForAsync(s => s.Leader?.Term == lease.Term, "the observer to see the term");

        var shortened = (await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(300))).Lease!;
        var seen = await log.WaitForAsync(s => s.Leader is null, "the observer to see no leader once the shortened TTL ran out", after: leading);

        Assert.True(seen.At - shortened.ExpiresAt < TimeSpan.FromSeconds(1), $"seen {(seen.At - shortened.ExpiresAt).TotalMilliseconds:0} ms after the shortened expiry");
    }

    [Fact]
    public async Task Observers_on_two_instances_converge_on_the_current_state_after_bursts_of_changes()
    {
        var name = ElectionFixture.NewName(nameof(Observers_on_two_instances_converge_on_the_current_state_after_bursts_of_changes));
        var instances = new[] { await NewInstanceAsync(), await NewInstanceAsync() };
        var logs = new List<ObserverLog>();
        for (var i = 0; i < 40; i++)
        {
            logs.Add(await LogAsync(instances[i % 2], name));
        }

        for (var burst = 0; burst < 5; burst++)
        {
            // Terms and values change as fast as two instances can make them, each change on either instance.
            var tasks = new List<Task>();
            for (var candidate = 0; candidate < 2; candidate++)
            {
                var store = instances[candidate].Store;
                var which = candidate;
                tasks.Add(Task.Run(async () =>
                {
                    for (var step = 0; step < 15; step++)
                    {
                        var reply = await store.CampaignAsync(name, Campaign(10_000, value: $"c{which}-{step}"));
                        if (reply.Lease is { } lease)
                        {
                            await store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: $"c{which}-{step}-p"));
                            await store.ResignAsync(name, lease.Token);
                        }
                    }
                }));
            }

            await Task.WhenAll(tasks);
            if (burst % 2 == 0)
            {
                await Store.CampaignAsync(name, Campaign(10_000, value: $"stays-{burst}"));
            }

            var current = new ElectionState(name.Key, await Store.LeaderAsync(name));
            foreach (var log in logs)
            {
                await log.WaitForAsync(s => s.Id == current.Id, $"every observer's last event to be the current state {current.Id} after burst {burst}", last: true);
            }

            if (current.Leader is not null)
            {
                await Store.ForceAsync(name);
            }
        }
    }

    [Fact]
    public async Task Last_event_id_of_the_current_state_skips_it_and_of_another_state_gets_the_current_first()
    {
        var name = ElectionFixture.NewName(nameof(Last_event_id_of_the_current_state_skips_it_and_of_another_state_gets_the_current_first));
        var instance = await NewInstanceAsync();
        var lease = (await Store.CampaignAsync(name, Campaign(10_000, value: "v"))).Lease!;
        var first = await LogAsync(instance, name);
        var current = await first.WaitForAsync(s => s.Leader?.Term == lease.Term, "the first observer to see the leader");

        using var resumed = Observe(instance, name, current.State.Id);
        using var behind = Observe(instance, name, "1.0000000000000000");
        await resumed.ReadyAsync(Deadline, default);

        Assert.Equal(current.State.Id, (await NextAsync(behind))!.Id);
        var next = resumed.NextAsync(default);
        var heartbeatOrChange = await Task.WhenAny(next, Task.Delay(TimeSpan.FromMilliseconds(300)));
        Assert.NotSame(next, heartbeatOrChange);

        await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: "w"));
        var after = (await next.WaitAsync(Deadline))!;
        Assert.Equal("w", after.Leader!.Value);
    }

    [Fact]
    public async Task Observers_of_one_name_share_one_subscription_and_one_read_per_change()
    {
        var name = ElectionFixture.NewName(nameof(Observers_of_one_name_share_one_subscription_and_one_read_per_change));
        var counting = CountingSubscriptions.Wrap(fixture.Redis.Redis, out var subscriptions);
        var store = fixture.NewStore(counting);
        using var observers = new ElectionObservers(counting, store, new ElectionOptions());
        var open = new List<ElectionObserver>();
        try
        {
            for (var i = 0; i < 1_000; i++)
            {
                open.Add(observers.TryObserve(name, null, out _)!);
            }

            await Task.WhenAll(open.Select(o => o.ReadyAsync(Deadline, default)));
            Assert.All(await Task.WhenAll(open.Select(o => NextAsync(o))), s => Assert.Null(s!.Leader));
            Assert.Equal(1, observers.Names);
            Assert.Equal(1, subscriptions.Value);
            var readsBefore = observers.Reads;

            const int changes = 5;
            for (var i = 0; i < changes; i++)
            {
                var lease = (await Store.CampaignAsync(name, Campaign(10_000, value: $"{i}"))).Lease!;
                var seen = await Task.WhenAll(open.Select(o => NextAsync(o)));
                Assert.All(seen, s => Assert.Equal(lease.Term, s!.Leader!.Term));
                await Store.ResignAsync(name, lease.Token);
                await Task.WhenAll(open.Select(o => NextAsync(o)));
            }

            // Two changes per round, each read once by the name's one reader (a heartbeat may add a read).
            Assert.InRange(observers.Reads - readsBefore, 2 * changes, (2 * changes) + 2);
            Assert.Equal(1, subscriptions.Value);
        }
        finally
        {
            open.ForEach(o => o.Dispose());
        }

        Assert.Equal(0, observers.Names);
        Assert.Equal(0, observers.Count);
    }

    [Fact]
    public async Task The_last_observer_of_a_name_to_leave_ends_its_subscription_in_redis()
    {
        var name = ElectionFixture.NewName(nameof(The_last_observer_of_a_name_to_leave_ends_its_subscription_in_redis));
        var instance = await NewInstanceAsync();
        var channel = Store.KeysOf(name).Channel;
        var first = Observe(instance, name);
        var second = Observe(instance, name);
        await first.ReadyAsync(Deadline, default);
        Assert.Equal(1, await SubscribersAsync(channel));

        first.Dispose();
        Assert.Equal(1, await SubscribersAsync(channel));
        second.Dispose();
        await RedisServer.WaitUntilAsync(async () => await SubscribersAsync(channel) == 0, Deadline, "the channel's subscription to end");
        Assert.Equal(0, instance.Observers.Names);

        // A new observer of the name subscribes again and is told changes.
        using var again = Observe(instance, name);
        await again.ReadyAsync(Deadline, default);
        Assert.Null((await NextAsync(again))!.Leader);
        var lease = (await Store.CampaignAsync(name, Campaign(10_000))).Lease!;
        Assert.Equal(lease.Term, (await NextAsync(again))!.Leader!.Term);
    }

    [Fact]
    public async Task The_instance_bound_and_a_tenants_share_refuse_observers_past_them_and_free_on_close()
    {
        var options = new ElectionOptions { MaxObservers = 4 };
        var store = fixture.NewStore(fixture.Redis.Redis);
        using var observers = new ElectionObservers(fixture.Redis.Redis, store, options);
        var name = nameof(The_instance_bound_and_a_tenants_share_refuse_observers_past_them_and_free_on_close);

        var a1 = observers.TryObserve(new LeaseName("a", Keys.Unique(name)), null, out _)!;
        var a2 = observers.TryObserve(new LeaseName("a", Keys.Unique(name)), null, out _)!;
        Assert.Null(observers.TryObserve(new LeaseName("a", Keys.Unique(name)), null, out var tenantFull));
        Assert.Equal(NoRoom.Tenant, tenantFull);

        var b1 = observers.TryObserve(new LeaseName("b", Keys.Unique(name)), null, out _)!;
        var b2 = observers.TryObserve(new LeaseName("b", Keys.Unique(name)), null, out _)!;
        Assert.Null(observers.TryObserve(new LeaseName("c", Keys.Unique(name)), null, out var instanceFull));
        Assert.Equal(NoRoom.Instance, instanceFull);

        a1.Dispose();
        a1.Dispose();
        using var a3 = observers.TryObserve(new LeaseName("a", Keys.Unique(name)), null, out var refused);
        Assert.NotNull(a3);
        Assert.Equal(NoRoom.None, refused);
        Assert.Equal(4, observers.Count);
        a2.Dispose();
        b1.Dispose();
        b2.Dispose();
    }

    [RedisServerFact]
    public async Task Changes_made_while_the_subscription_was_cut_are_seen_when_it_comes_back()
    {
        await using var redis = await RedisServer.StartNewAsync();
        using var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var store = fixture.NewStore(multiplexer);
        using var observers = new ElectionObservers(multiplexer, store, new ElectionOptions());
        var name = ElectionFixture.NewName(nameof(Changes_made_while_the_subscription_was_cut_are_seen_when_it_comes_back));
        var log = new ObserverLog(observers.TryObserve(name, null, out _)!);
        _cleanup.Add(log);
        await log.WaitForAsync(s => s.Leader is null, "the first state");

        // Cut the subscription connection; the campaign's notice goes nowhere, and the reconnection must make up for it.
        using var admin = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var other = fixture.NewStore(admin);
        await admin.GetDatabase().ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub");
        var lease = (await other.CampaignAsync(name, Campaign(30_000, value: "while-cut"))).Lease!;

        await log.WaitForAsync(s => s.Leader?.Term == lease.Term, "the observer to see the term made while its subscription was cut");
    }

    [RedisServerFact]
    public async Task Observing_while_redis_is_down_fails_before_any_state_is_handed_out()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var options = ConfigurationOptions.Parse(redis.ConnectionString);
        options.AbortOnConnectFail = false;
        using var multiplexer = await ConnectionMultiplexer.ConnectAsync(options);
        var store = ElectionTesting.NewStore(multiplexer, new RedisOptions { ConnectionString = redis.ConnectionString, TimeoutMs = 500 });
        using var observers = new ElectionObservers(multiplexer, store, new ElectionOptions());
        await redis.StopAsync();

        using var observer = observers.TryObserve(ElectionFixture.NewName(nameof(Observing_while_redis_is_down_fails_before_any_state_is_handed_out)), null, out _)!;
        var elapsed = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => observer.ReadyAsync(TimeSpan.FromSeconds(2), default));

        Assert.True(RedisFaults.IsUnavailable(ex), ex.ToString());
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(3), $"took {elapsed.Elapsed.TotalMilliseconds:0} ms");
    }

    private static async Task<ElectionState?> NextAsync(ElectionObserver observer) => await observer.NextAsync(default).WaitAsync(Deadline);

    private async Task<long> SubscribersAsync(string channel)
    {
        // Sharded pub/sub on Redis 7 (the service's choice there), plain before.
        var server = fixture.Redis.Redis.GetServers()[0];
        var sharded = server.Version >= new Version(7, 0);
        var reply = (RedisResult[])(await fixture.Db.ExecuteAsync("PUBSUB", sharded ? "SHARDNUMSUB" : "NUMSUB", channel))!;
        return (long)reply[1];
    }

    private static ElectionObserver Observe(Instance instance, LeaseName name, string? lastEventId = null) =>
        instance.Observers.TryObserve(name, lastEventId, out _) ?? throw new InvalidOperationException("no room to observe");

    private async Task<ObserverLog> LogAsync(Instance instance, LeaseName name)
    {
        var observer = Observe(instance, name);
        await observer.ReadyAsync(Deadline, default);
        var log = new ObserverLog(observer);
        _cleanup.Add(log);
        return log;
    }

    // Another service instance: a connection of its own, its own store and observers.
    private async Task<Instance> NewInstanceAsync()
    {
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString);
        var instance = new Instance(multiplexer, fixture.NewStore(multiplexer));
        _cleanup.Add(instance);
        return instance;
    }

    private sealed class Instance(ConnectionMultiplexer multiplexer, ElectionStore store) : IAsyncDisposable
    {
        public ElectionStore Store { get; } = store;

        public ElectionObservers Observers { get; } = new(multiplexer, store, new ElectionOptions());

        public async ValueTask DisposeAsync()
        {
            Observers.Dispose();
            await multiplexer.DisposeAsync();
        }
    }

    /// <summary>An observer taking every state it is handed, as a stream would send them, with when it got each.</summary>
    private sealed class ObserverLog : IAsyncDisposable
    {
        private readonly ElectionObserver _observer;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<Seen> _seen = new();
        private readonly Task _loop;

        public ObserverLog(ElectionObserver observer)
        {
            _observer = observer;
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    if (await _observer.NextAsync(_stop.Token) is { } state)
                    {
                        _seen.Enqueue(new Seen(state, DateTimeOffset.UtcNow, _seen.Count));
                    }
                }
            });
        }

        /// <summary>
        /// Waits until a state handed out (after <paramref name="after"/>, when given) matches; with <paramref name="last"/>,
        /// until the last one handed out does.
        /// </summary>
        public async Task<Seen> WaitForAsync(Func<ElectionState, bool> match, string what, bool last = false, Seen? after = null)
        {
            Seen? found = null;
            await RedisServer.WaitUntilAsync(
                () =>
                {
                    if (_loop.IsFaulted)
                    {
                        throw _loop.Exception!;
                    }

                    found = last
                        ? _seen.LastOrDefault() is { } l && match(l.State) ? l : null
                        : _seen.FirstOrDefault(s => s.Index > (after?.Index ?? -1) && match(s.State));
                    return Task.FromResult(found is not null);
                },
                Deadline,
                what);
            return found!;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }

            _observer.Dispose();
            _stop.Dispose();
        }
    }

    private sealed record Seen(ElectionState State, DateTimeOffset At, int Index);

    /// <summary>A multiplexer whose subscriber counts the subscriptions sent, and is the real connection in every other respect.</summary>
    public class CountingSubscriptions : DispatchProxy
    {
        private object _inner = null!;
        private Counter _count = null!;

        public static IConnectionMultiplexer Wrap(IConnectionMultiplexer inner, out Counter count)
        {
            var proxy = Create<IConnectionMultiplexer, CountingSubscriptions>();
            var hook = (CountingSubscriptions)(object)proxy;
            hook._inner = inner;
            hook._count = count = new Counter();
            return proxy;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            if (targetMethod.Name == nameof(IConnectionMultiplexer.GetSubscriber))
            {
                var subscriber = Create<ISubscriber, CountingSubscriptions>();
                var hook = (CountingSubscriptions)(object)subscriber;
                hook._inner = targetMethod.Invoke(_inner, args)!;
                hook._count = _count;
                return subscriber;
            }

            if (targetMethod.Name == nameof(ISubscriber.SubscribeAsync))
            {
                Interlocked.Increment(ref _count.Value);
            }

            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (TargetInvocationException ex) when (ex.InnerException is not null)
            {
                throw ex.InnerException;
            }
        }
    }

    /// <summary>A counter shared by reference.</summary>
    public sealed class Counter
    {
        public int Value;
    }
}
