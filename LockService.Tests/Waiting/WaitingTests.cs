using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Waiting;

/// <summary>Server-side waiting through the API: woken by release or expiry, bounded by waitMs.</summary>
public sealed class WaitingTests(ApiFixture fixture) : WaitingBehaviour, IClassFixture<ApiFixture>
{
    protected override LockClient Client => fixture.Client;

    protected override string RedisConnectionString => fixture.Redis.ConnectionString;

    [Fact]
    public async Task A_waiter_gets_the_lock_promptly_after_the_release()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_waiter_gets_the_lock_promptly_after_the_release));
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");
        var waiter = client.AcquireAsync(key, "waitMs=20000");
        await service.WaitForWaitersAsync(1);

        await client.ReleaseAsync(key, holder.Token);
        var released = Stopwatch.StartNew();
        var reply = await waiter;

        // The re-check is a minute away and the TTL 30 s: within 5 s, only the release's message woke it. (Not
        // under a second: a loaded machine has taken 2 s for a hand-off.)
        Handoff.AssertPrompt(reply, holder, released, TimeSpan.FromSeconds(5), "the release");
    }

    [Fact]
    public async Task When_waitMs_runs_out_the_answer_is_409_with_retry_after()
    {
        var key = Keys.Unique(nameof(When_waitMs_runs_out_the_answer_is_409_with_retry_after));
        await Client.AcquireOkAsync(key, "ttlMs=20000");
        var started = Stopwatch.StartNew();

        var reply = await Client.AcquireAsync(key, "waitMs=300");

        var problem = reply.AssertProblem(HttpStatusCode.Conflict, "lock_held");
        Assert.True(started.ElapsedMilliseconds >= 290, $"answered after {started.ElapsedMilliseconds} ms");
        var retryAfterMs = problem.GetProperty("retryAfterMs").GetInt64();
        Assert.InRange(retryAfterMs, 10_000, 20_000);
        Assert.Equal(TimeSpan.FromSeconds(Math.Ceiling(retryAfterMs / 1000.0)), reply.Headers.RetryAfter!.Delta);
    }

    [Fact]
    public async Task Waiters_on_one_key_get_the_lock_in_arrival_order()
    {
        var key = Keys.Unique(nameof(Waiters_on_one_key_get_the_lock_in_arrival_order));
        var holder = await Client.AcquireOkAsync(key, "ttlMs=30000");
        var order = new List<int>();
        var waiters = new List<Task>();
        var baseline = fixture.Factory.Engine().WaitingCount;
        for (var i = 0; i < 8; i++)
        {
            var index = i;
            waiters.Add(Task.Run(async () =>
            {
                var lease = await Client.AcquireOkAsync(key, "waitMs=20000&ttlMs=30000");
                lock (order)
                {
                    order.Add(index);
                }

                await Client.ReleaseAsync(key, lease.Token);
            }));
            await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Engine().WaitingCount >= baseline + i + 1), TimeSpan.FromSeconds(10), $"waiter {i} to queue");
        }

        await Client.ReleaseAsync(key, holder.Token);
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(Enumerable.Range(0, 8), order);
    }

    [Fact]
    public async Task A_release_in_the_window_before_the_subscription_still_wakes_the_waiter()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(A_release_in_the_window_before_the_subscription_still_wakes_the_waiter)));
        using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString);
        TestLocks? engine = null;
        AcquireResult<LockLease, NoDetail>? holder = null;

        // The holder releases after the waiter's failed attempt and before it subscribes: the notice goes to nobody.
        // A re-check period far beyond the test: only the attempt made after subscribing can find the lock free.
        var hooked = SubscribeHook.Wrap(connection, async () => Assert.True((await engine!.ReleaseAsync(name, holder!.Lease!.Token)).Released));
        using var owned = TestLocks.Create(hooked, new LeaseOptions { RecheckMs = 60_000 }, new RedisOptions { ConnectionString = fixture.Redis.ConnectionString });
        engine = owned;
        holder = await engine.AcquireAsync(name, new AcquireRequest(30_000));
        var started = Stopwatch.StartNew();
        var waiter = await engine.AcquireAsync(name, new AcquireRequest(30_000, WaitMs: 20_000));

        Assert.True(waiter.Acquired);

        // Sleeping through the release would end at the re-check (a minute) or the TTL (30 s); 5 s leaves a loaded machine slack.
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), $"took {started.ElapsedMilliseconds} ms: the waiter slept through the release");
    }

    [Fact]
    public async Task A_waiter_whose_client_disconnects_never_holds_the_lock()
    {
        await using var factory = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(factory.CreateClient());
        var key = Keys.Unique(nameof(A_waiter_whose_client_disconnects_never_holds_the_lock));
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");

        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(factory.BaseAddress.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(factory.BaseAddress.Host), factory.BaseAddress.Port);
            var request = $"POST /locks/{key}?waitMs=30000 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(request));
            await factory.WaitForWaitersAsync(1);
        }

        await factory.WaitForWaitersAsync(0);
        Assert.Equal(HttpStatusCode.NoContent, (await client.ReleaseAsync(key, holder.Token)).Status);

        // Nobody may pick the lock up for the vanished client, now or a moment later.
        (await client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        var next = await client.AcquireOkAsync(key, "ttlMs=1000");
        Assert.True(next.FencingToken > holder.FencingToken, "fencing tokens must increase");
    }
}

/// <summary>Redis work per acquisition under contention, on a Redis of its own so nothing else is counted.</summary>
public sealed class WakeOneTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private LockServiceFactory _factory = null!;
    private LockClient _client = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _factory = new LockServiceFactory(_redis.ConnectionString);
        _client = new LockClient(_factory.CreateClient());
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [RedisServerFact]
    public async Task Script_calls_per_acquisition_stay_small_and_do_not_grow_with_the_number_of_waiters()
    {
        var few = await ScriptCallsPerAcquisitionAsync(waiters: 5);
        var many = await ScriptCallsPerAcquisitionAsync(waiters: 20);

        // One acquire and one release per acquisition, plus the waiter's subscribe-then-try once: about 3.
        Assert.True(few <= 4, $"5 waiters: {few:0.00} script calls per acquisition");
        Assert.True(many <= 4, $"20 waiters: {many:0.00} script calls per acquisition");
        Assert.True(many <= few + 0.5, $"grew from {few:0.00} to {many:0.00}");
    }

    [RedisServerFact]
    public async Task Beyond_MaxWaiters_a_waiting_acquire_is_429_while_a_plain_one_is_still_409()
    {
        await using var factory = new LockServiceFactory(_redis.ConnectionString, new Dictionary<string, string?> { ["Locks:MaxWaiters"] = "2" });
        var client = new LockClient(factory.CreateClient());
        var key = Keys.Unique(nameof(Beyond_MaxWaiters_a_waiting_acquire_is_429_while_a_plain_one_is_still_409));
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");
        var first = client.AcquireAsync(key, "waitMs=20000");
        var second = client.AcquireAsync(key, "waitMs=20000");
        await factory.WaitForWaitersAsync(2);

        var third = await client.AcquireAsync(key, "waitMs=20000");
        var plain = await client.AcquireAsync(key);

        third.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.Equal(TimeSpan.FromSeconds(1), third.Headers.RetryAfter!.Delta);
        plain.AssertProblem(HttpStatusCode.Conflict, "lock_held");
        await client.ReleaseAsync(key, holder.Token);
        var winner = await await Task.WhenAny(first, second);
        Assert.Equal(HttpStatusCode.Created, winner.Status);
        await client.ReleaseAsync(key, winner.Lease.Token);
        Assert.All(await Task.WhenAll(first, second), r => Assert.Equal(HttpStatusCode.Created, r.Status));
    }

    private async Task<double> ScriptCallsPerAcquisitionAsync(int waiters)
    {
        var key = Keys.Unique($"wake-one-{waiters}");
        var holder = await _client.AcquireOkAsync(key, "ttlMs=30000");
        var acquired = 0;
        var tasks = Enumerable.Range(0, waiters).Select(_ => Task.Run(async () =>
        {
            var lease = await _client.AcquireOkAsync(key, "waitMs=30000&ttlMs=30000");
            Interlocked.Increment(ref acquired);
            await _client.ReleaseAsync(key, lease.Token);
        })).ToArray();
        await _factory.WaitForWaitersAsync(waiters);

        var before = await ScriptCallsAsync();
        await _client.ReleaseAsync(key, holder.Token);
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(30));
        var after = await ScriptCallsAsync();

        Assert.Equal(waiters, acquired);
        return (after - before - 1) / (double)waiters;
    }

    private async Task<long> ScriptCallsAsync()
    {
        var options = StackExchange.Redis.ConfigurationOptions.Parse(_redis.ConnectionString);
        options.AllowAdmin = true;
        await using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(options);
        var info = await admin.GetServers()[0].InfoAsync("commandstats");
        return info.SelectMany(g => g)
            .Where(p => p.Key is "cmdstat_evalsha" or "cmdstat_eval")
            .Sum(p => long.Parse(p.Value.Split(',')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
    }
}
