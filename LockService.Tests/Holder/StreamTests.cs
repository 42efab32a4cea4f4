using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Holder;

/// <summary>Locks held by a Server-Sent Events stream, against a real Kestrel port and real client processes.</summary>
public sealed class StreamTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task A_stream_holds_the_lock_renews_it_and_its_close_releases_it_at_once()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_stream_holds_the_lock_renews_it_and_its_close_releases_it_at_once));

        using var http = LeaseEvents.ClientFor(service.BaseAddress);
        await using (var stream = await LeaseEvents.OpenAsync(http, key, "ttlMs=2000&owner=streamer"))
        {
            Assert.Equal(HttpStatusCode.OK, stream.Status);
            Assert.Equal("text/event-stream", stream.MediaType);
            Assert.Equal("no", stream.Header("X-Accel-Buffering"));
            var acquired = await stream.NextEventAsync();
            Assert.Equal("acquired", acquired.Name);
            var lease = JsonDocument.Parse(acquired.Data).RootElement;
            Assert.Equal("streamer", lease.GetProperty("owner").GetString());
            var token = lease.GetProperty("token").GetString()!;

            // Four renewals (a comment each, every ttlMs/3) take the lock past its first 2 s TTL; 2 s rather than 1 leaves a
            // cold first renewal on a loaded machine 1.3 s of slack, and a TTL expiry 1.3 s after the close at the earliest.
            for (var i = 0; i < 4; i++)
            {
                Assert.StartsWith(": renewed", await stream.NextCommentAsync(), StringComparison.Ordinal);
            }

            Assert.Equal(HttpStatusCode.OK, (await client.CheckAsync(key, token)).Status);
        }

        var closed = Stopwatch.StartNew();
        await RedisServer.WaitUntilAsync(async () => (await client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "the lock to be free");
        Assert.True(closed.Elapsed < TimeSpan.FromMilliseconds(900), $"the lock was free {closed.ElapsedMilliseconds} ms after the close: its TTL, not the close, freed it");
    }

    [Theory]
    [InlineData("release", "released")]
    [InlineData("force", "forced")]
    [InlineData("hold-cap", "expired")]
    [InlineData("vanished", "expired")]
    public async Task A_stream_says_lost_with_the_reason_when_the_lock_is_lost(string how, string reason)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_stream_says_lost_with_the_reason_when_the_lock_is_lost) + how);
        await using var stream = await LeaseEvents.OpenAsync(service.CreateClient(), key, how == "hold-cap" ? "ttlMs=1000&maxHoldMs=2000" : "ttlMs=3000");
        var token = JsonDocument.Parse((await stream.NextEventAsync()).Data).RootElement.GetProperty("token").GetString()!;

        switch (how)
        {
            case "release":
                Assert.Equal(HttpStatusCode.NoContent, (await client.ReleaseAsync(key, token)).Status);
                break;
            case "force":
                Assert.True((await service.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
                break;
            case "vanished":
                Assert.True(await fixture.Redis.Redis.GetDatabase().KeyDeleteAsync(Keys.InRedis(key).Lock));
                break;
        }

        var lost = await stream.NextEventAsync();
        Assert.Equal("lost", lost.Name);
        Assert.Equal(reason, JsonDocument.Parse(lost.Data).RootElement.GetProperty("reason").GetString());
        Assert.True(await stream.EndedAsync(), "the stream goes on after 'lost'");
    }

    [Theory]
    [InlineData("ttlMs=999", null, "ttlMs")]
    [InlineData("ttlMs=5000", "Idempotency-Key", "Idempotency-Key")]
    public async Task A_stream_with_a_short_ttl_or_an_idempotency_key_is_400_naming_it(string query, string? header, string parameter)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_stream_with_a_short_ttl_or_an_idempotency_key_is_400_naming_it));
        var headers = new Dictionary<string, string> { ["Accept"] = "text/event-stream" };
        if (header is not null)
        {
            headers[header] = "retry-1";
        }

        var reply = await client.SendAsync(HttpMethod.Post, $"/locks/{key}?{query}", headers: headers);

        var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        Assert.True(problem.GetProperty("errors").TryGetProperty(parameter, out _), reply.Body);
        (await client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [Fact]
    public async Task A_stream_whose_wait_runs_out_is_a_plain_409_problem()
    {
        var client = fixture.Client;
        var key = Keys.Unique(nameof(A_stream_whose_wait_runs_out_is_a_plain_409_problem));
        await client.AcquireOkAsync(key, "ttlMs=30000");

        var reply = await client.SendAsync(HttpMethod.Post, $"/locks/{key}?ttlMs=5000&waitMs=200", headers: new Dictionary<string, string> { ["Accept"] = "text/event-stream" });

        reply.AssertProblem(HttpStatusCode.Conflict, "lock_held");
        Assert.NotNull(reply.Headers.RetryAfter);
    }

    [Fact]
    public async Task A_stream_that_waited_starts_once_the_lock_is_free()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_stream_that_waited_starts_once_the_lock_is_free));
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");
        var opening = LeaseEvents.OpenAsync(service.CreateClient(), key, "ttlMs=2000&waitMs=20000");
        await service.WaitForWaitersAsync(1);

        Assert.Equal(HttpStatusCode.NoContent, (await client.ReleaseAsync(key, holder.Token)).Status);
        await using var stream = await opening;

        Assert.Equal(HttpStatusCode.OK, stream.Status);
        var lease = JsonDocument.Parse((await stream.NextEventAsync()).Data).RootElement;
        Assert.True(lease.GetProperty("fencingToken").GetInt64() > holder.FencingToken);
    }

    [Fact]
    public async Task An_instance_that_stops_ends_its_streams_with_unavailable_and_releases_their_locks()
    {
        var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(An_instance_that_stops_ends_its_streams_with_unavailable_and_releases_their_locks));
        await using var stream = await LeaseEvents.OpenAsync(service.CreateClient(), key, "ttlMs=30000");
        await stream.NextEventAsync();

        var stopping = service.DisposeAsync();
        var lost = await stream.NextEventAsync();
        await stopping;

        Assert.Equal("lost", lost.Name);
        Assert.Equal("unavailable", JsonDocument.Parse(lost.Data).RootElement.GetProperty("reason").GetString());
        Assert.False(await fixture.Redis.Redis.GetDatabase().KeyExistsAsync(Keys.InRedis(key).Lock));
    }

    [Fact]
    public async Task A_killed_client_process_frees_the_lock_within_milliseconds_and_a_frozen_one_keeps_it()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_killed_client_process_frees_the_lock_within_milliseconds_and_a_frozen_one_keeps_it));
        // 2 s: renewals every 667 ms leave 1.3 s of slack, which a fresh instance's first (cold) renewal on a loaded CI
        // machine needs; 1 s left 667 ms and once lost the lock while frozen. A TTL expiry after the kill would still
        // come 1.3-2 s after it, well apart from the closed connection's bound below.
        using var curl = Curl.Stream(new Uri(service.BaseAddress, $"/locks/{key}?ttlMs=2000"));
        await RedisServer.WaitUntilAsync(async () => (await client.InspectAsync(key)).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "curl to hold the lock");

        // Frozen: the connection stays up (the kernel still acknowledges), so the lease holds past several TTLs.
        Curl.Signal(curl, "STOP");
        var frozen = Stopwatch.StartNew();
        while (frozen.Elapsed < TimeSpan.FromSeconds(5))
        {
            Assert.Equal(HttpStatusCode.OK, (await client.InspectAsync(key)).Status);
            await Task.Delay(250);
        }

        Curl.Signal(curl, "KILL");
        var killed = Stopwatch.StartNew();
        await RedisServer.WaitUntilAsync(async () => (await client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "the lock to be free");
        Assert.True(killed.Elapsed < TimeSpan.FromMilliseconds(1200), $"free {killed.ElapsedMilliseconds} ms after SIGKILL: the TTL, not the closed connection, freed it");
    }

    [Fact]
    public async Task A_thousand_streams_hold_a_thousand_locks_on_one_instance_and_free_them_on_close()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        using var http = LeaseEvents.ClientFor(service.BaseAddress);
        var prefix = Keys.Unique("thousand");
        var streams = await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => LeaseEvents.OpenAsync(http, $"{prefix}-{i}", "ttlMs=30000")));
        try
        {
            Assert.All(streams, s => Assert.Equal(HttpStatusCode.OK, s.Status));
            var acquired = await Task.WhenAll(streams.Select(s => s.NextEventAsync()));
            Assert.All(acquired, e => Assert.Equal("acquired", e.Name));
            Assert.Equal(HttpStatusCode.OK, (await client.InspectAsync($"{prefix}-999")).Status);
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }

        await RedisServer.WaitUntilAsync(
            async () => (await Task.WhenAll(new[] { 0, 500, 999 }.Select(i => client.InspectAsync($"{prefix}-{i}")))).All(r => r.Status == HttpStatusCode.NotFound),
            TimeSpan.FromSeconds(20),
            "the streams' locks to be released");
    }

    [RedisServerFact]
    public async Task A_redis_restarted_without_persistence_under_a_stream_makes_it_say_lost_within_its_ttl()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using var service = new LockServiceFactory(redis.ConnectionString, kestrel: true);
        using var http = LeaseEvents.ClientFor(service.BaseAddress);
        var key = Keys.Unique(nameof(A_redis_restarted_without_persistence_under_a_stream_makes_it_say_lost_within_its_ttl));
        await using var stream = await LeaseEvents.OpenAsync(http, key, "ttlMs=1500");
        Assert.Equal("acquired", (await stream.NextEventAsync()).Name);

        await redis.StopAsync();
        await redis.StartAsync();
        var restarted = Stopwatch.StartNew();
        var lost = await stream.NextEventAsync();

        // The restarted Redis no longer has the lock: the stream must not go on claiming it. Its bound is the TTL plus
        // the service's reconnect (every 500 ms) and a loaded machine's margin.
        Assert.Equal("lost", lost.Name);
        Assert.Contains(JsonDocument.Parse(lost.Data).RootElement.GetProperty("reason").GetString(), new[] { "expired", "unavailable" });
        Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(1.5 + 5), $"the stream said lost {restarted.ElapsedMilliseconds} ms after Redis came back");
    }
}
