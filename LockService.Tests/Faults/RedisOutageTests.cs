using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace LockService.Tests.Faults;

/// <summary>A Redis of this class's own that the tests kill, restart and pause under a running service.</summary>
public sealed class RedisOutageTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int TimeoutMs = 1000;
    private const string SomeToken = "0123456789abcdef0123456789abcdef";
    private RedisServer _redis = null!;
    private LockServiceFactory _factory = null!;
    private LockClient _client = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _factory = new LockServiceFactory(_redis.ConnectionString, new Dictionary<string, string?> { ["Redis:TimeoutMs"] = TimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        _client = new LockClient(_factory.CreateClient());
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [RedisServerFact]
    public async Task A_killed_redis_gives_fast_503s_and_the_service_heals_by_itself_when_it_returns()
    {
        var key = Keys.Unique(nameof(A_killed_redis_gives_fast_503s_and_the_service_heals_by_itself_when_it_returns));
        static (HttpMethod Method, string Path)[] Routes(string key) =>
        [
            (HttpMethod.Post, $"/locks/{key}"), (HttpMethod.Post, $"/locks/{key}?waitMs=5000"), (HttpMethod.Delete, $"/locks/{key}/{SomeToken}"),
            (HttpMethod.Patch, $"/locks/{key}/{SomeToken}"), (HttpMethod.Get, $"/locks/{key}"), (HttpMethod.Get, $"/locks/{key}/{SomeToken}"),
        ];

        // Every route once while Redis is up (on keys of their own, so the waiting one does not wait), so the timed
        // answers below measure the outage, not a first call's start-up.
        foreach (var (method, path) in Routes(key + "-warm-1").Take(1).Concat(Routes(key + "-warm-2").Skip(1)))
        {
            await _client.SendAsync(method, path);
        }

        var holder = await _client.AcquireOkAsync(key + "-waited", "ttlMs=30000");

        // A waitMs far beyond the deadline below: an answer only at the end of the wait would not pass for one about the outage.
        var waiter = _client.AcquireAsync(key + "-waited", "waitMs=30000");
        await _factory.WaitForWaitersAsync(1);

        await _redis.StopAsync();

        // The waiter does not hang until its waitMs: Redis is gone, so its wait cannot continue, and the contract says 503.
        var waited = await waiter.WaitAsync(TimeSpan.FromSeconds(10));
        waited.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
        foreach (var (method, path) in Routes(key))
        {
            var watch = Stopwatch.StartNew();
            var reply = await _client.SendAsync(method, path);

            reply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
            Assert.Equal(TimeSpan.FromSeconds(1), reply.Headers.RetryAfter!.Delta);
            Assert.True(watch.ElapsedMilliseconds < TimeoutMs + 1000, $"{method} {path} answered after {watch.ElapsedMilliseconds} ms");
            output.WriteLine($"outage: {method} {path} -> 503 in {watch.ElapsedMilliseconds} ms");
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await _client.SendAsync(HttpMethod.Get, "/health/ready")).Status);
        Assert.Equal(HttpStatusCode.OK, (await _client.SendAsync(HttpMethod.Get, "/health/live")).Status);

        // Same port, empty Redis (no persistence here): the service reconnects and reloads its scripts by itself.
        await _redis.StartAsync();
        var restarted = Stopwatch.StartNew();
        await RedisServer.WaitUntilAsync(
            async () => (await _client.AcquireAsync(key + "-after")).Status == HttpStatusCode.Created,
            TimeSpan.FromSeconds(5),
            "a 201 after Redis came back");
        Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(5));
        output.WriteLine($"recovery: first 201 {restarted.ElapsedMilliseconds} ms after Redis answered again");
        Assert.Equal(HttpStatusCode.OK, (await _client.SendAsync(HttpMethod.Get, "/health/ready")).Status);

        // The restarted Redis forgot the lock and its last fencing token; the next token is still larger.
        var afterRestart = await _client.AcquireOkAsync(key + "-waited");
        Assert.True(afterRestart.FencingToken > holder.FencingToken, $"fencing token went from {holder.FencingToken} to {afterRestart.FencingToken} across a restart without persistence");
    }

    [RedisServerFact]
    public async Task A_paused_redis_ends_requests_at_the_timeout_with_503_and_then_serves_again()
    {
        var key = Keys.Unique(nameof(A_paused_redis_ends_requests_at_the_timeout_with_503_and_then_serves_again));
        await _client.AcquireOkAsync(key + "-warm");
        await using var admin = await AdminAsync();

        // CLIENT PAUSE stalls every client's commands: Redis is up but does not answer in time. 8 s: room for both
        // requests below at their bounds (4 s, then 2 s), so the second one still meets a paused Redis.
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "8000", "ALL");

        // The first 503 of the service also runs its error path for the first time: it is held to the contract, but
        // with the slack of a first call; the second one, timed from just before its request, to the contract's bound.
        var first = Stopwatch.StartNew();
        var firstReply = await _client.AcquireAsync(key + "-first");
        firstReply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
        Assert.True(first.ElapsedMilliseconds < TimeoutMs + 3000, $"first 503 after {first.ElapsedMilliseconds} ms: the pause lasts 8 s, so this is no hang");
        var watch = Stopwatch.StartNew();
        var reply = await _client.AcquireAsync(key);

        reply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
        Assert.InRange(watch.ElapsedMilliseconds, TimeoutMs - 100, TimeoutMs + 1000);
        output.WriteLine($"paused Redis: 503 after {first.ElapsedMilliseconds} ms, then {watch.ElapsedMilliseconds} ms (Redis:TimeoutMs {TimeoutMs})");
        await RedisServer.WaitUntilAsync(
            async () => (await _client.AcquireAsync(key + "-later")).Status == HttpStatusCode.Created,
            TimeSpan.FromSeconds(15),
            "a 201 after the pause");

        // The acquires that were answered 503 ran in Redis once the pause ended; they must not have left a lock.
        (await _client.InspectAsync(key + "-first")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await _client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [RedisServerFact]
    public async Task After_SCRIPT_FLUSH_the_next_call_reloads_the_scripts_and_succeeds()
    {
        var key = Keys.Unique(nameof(After_SCRIPT_FLUSH_the_next_call_reloads_the_scripts_and_succeeds));
        var lease = await _client.AcquireOkAsync(key);
        await using var admin = await AdminAsync();

        await admin.GetServers()[0].ScriptFlushAsync();

        Assert.Equal(HttpStatusCode.OK, (await _client.InspectAsync(key)).Status);
        Assert.Equal(HttpStatusCode.OK, (await _client.ExtendAsync(key, lease.Token)).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await _client.ReleaseAsync(key, lease.Token)).Status);
        Assert.Equal(HttpStatusCode.Created, (await _client.AcquireAsync(key)).Status);
    }

    private async Task<ConnectionMultiplexer> AdminAsync()
    {
        var options = ConfigurationOptions.Parse(_redis.ConnectionString);
        options.AllowAdmin = true;
        return await ConnectionMultiplexer.ConnectAsync(options);
    }
}
