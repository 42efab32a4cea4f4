using System.Diagnostics;
using System.Net;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Holder;

/// <summary>
/// The holder's side of a lease through the API: when it was acquired, the hold cap, why a token no longer holds
/// its lock, and watching a lease end.
/// </summary>
public sealed class LeaseTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private LockClient Client => fixture.Client;

    [Fact]
    public async Task Every_body_that_describes_a_lock_carries_acquiredAt_from_redis_and_maxHoldMs()
    {
        var key = Keys.Unique(nameof(Every_body_that_describes_a_lock_carries_acquiredAt_from_redis_and_maxHoldMs));
        var before = DateTimeOffset.UtcNow.AddSeconds(-60);
        var lease = await Client.AcquireOkAsync(key, "ttlMs=5000");
        var acquiredAt = lease.Json.GetProperty("acquiredAt").GetDateTimeOffset();

        Assert.InRange(acquiredAt, before, DateTimeOffset.UtcNow.AddSeconds(60));
        Assert.Equal(acquiredAt.AddMilliseconds(5000), lease.Json.GetProperty("expiresAt").GetDateTimeOffset());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, lease.Json.GetProperty("maxHoldMs").ValueKind);
        foreach (var reply in new[]
                 {
                     await Client.InspectAsync(key), await Client.CheckAsync(key, lease.Token), await Client.ExtendAsync(key, lease.Token, "ttlMs=6000"),
                 })
        {
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            Assert.Equal(acquiredAt, reply.Json.GetProperty("acquiredAt").GetDateTimeOffset());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, reply.Json.GetProperty("maxHoldMs").ValueKind);
        }
    }

    [Fact]
    public async Task No_extend_takes_the_expiry_past_the_hold_cap_and_then_the_lease_has_expired()
    {
        var key = Keys.Unique(nameof(No_extend_takes_the_expiry_past_the_hold_cap_and_then_the_lease_has_expired));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=1000&maxHoldMs=1500");
        Assert.Equal(1500, lease.Json.GetProperty("maxHoldMs").GetInt64());

        var extended = await Client.ExtendAsync(key, lease.Token, "ttlMs=60000");
        Assert.Equal(HttpStatusCode.OK, extended.Status);
        Assert.InRange(extended.Lease.TtlMs, 1, 1500);
        var acquiredAt = lease.Json.GetProperty("acquiredAt").GetDateTimeOffset();
        Assert.True(extended.Json.GetProperty("expiresAt").GetDateTimeOffset() <= acquiredAt.AddMilliseconds(1500));
        Assert.InRange((await Client.InspectAsync(key)).Json.GetProperty("ttlMs").GetInt64(), 1, 1500);

        await RedisServer.WaitUntilAsync(async () => (await Client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(10), "the hold cap to run out");
        var after = (await Client.ExtendAsync(key, lease.Token, "ttlMs=60000")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.Equal("expired", after.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("ttlMs=5000&maxHoldMs=4999")]
    [InlineData("maxHoldMs=604800001")]
    [InlineData("maxHoldMs=abc")]
    public async Task A_hold_cap_below_the_ttl_or_over_the_limit_is_400_naming_maxHoldMs(string query)
    {
        var key = Keys.Unique(nameof(A_hold_cap_below_the_ttl_or_over_the_limit_is_400_naming_maxHoldMs));
        var problem = (await Client.AcquireAsync(key, query)).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");

        Assert.True(problem.GetProperty("errors").TryGetProperty("maxHoldMs", out _), problem.ToString());
        (await Client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [Fact]
    public async Task The_default_hold_cap_applies_and_cuts_a_longer_ttl()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Locks:DefaultMaxHoldMs"] = "2000" });
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(The_default_hold_cap_applies_and_cuts_a_longer_ttl));

        var lease = await client.AcquireOkAsync(key, "ttlMs=30000");

        Assert.Equal(2000, lease.TtlMs);
        Assert.Equal(2000, lease.Json.GetProperty("maxHoldMs").GetInt64());
        Assert.Equal(5000, (await client.AcquireOkAsync(key + "-own", "ttlMs=3000&maxHoldMs=5000")).Json.GetProperty("maxHoldMs").GetInt64());
    }

    [Fact]
    public async Task Every_404_for_a_token_says_why_released_expired_forced_or_unknown()
    {
        var key = Keys.Unique(nameof(Every_404_for_a_token_says_why_released_expired_forced_or_unknown));
        var released = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, released.Token)).Status);
        var expired = await Client.AcquireOkAsync(key, "ttlMs=100");
        await RedisServer.WaitUntilAsync(async () => (await Client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(10), "expiry");
        var forced = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.True((await fixture.Factory.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
        var current = await Client.AcquireOkAsync(key, "ttlMs=30000");

        foreach (var (token, reason) in new[] { (released.Token, "released"), (expired.Token, "expired"), (forced.Token, "forced"), (LeaseToken.New(), "unknown") })
        {
            foreach (var reply in new[] { await Client.CheckAsync(key, token), await Client.ExtendAsync(key, token), await Client.ReleaseAsync(key, token) })
            {
                var problem = reply.AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
                Assert.Equal(reason, problem.GetProperty("reason").GetString());
            }
        }

        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, current.Token)).Status);
    }

    [Fact]
    public async Task A_forced_holder_still_hears_forced_after_a_waiter_took_the_lock_at_once()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_forced_holder_still_hears_forced_after_a_waiter_took_the_lock_at_once));
        var holder = await client.AcquireOkAsync(key, "ttlMs=30000");
        var waiter = client.AcquireAsync(key, "waitMs=20000");
        await service.WaitForWaitersAsync(1);

        var forcedAt = Stopwatch.StartNew();
        Assert.True((await service.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
        var next = await waiter;

        Assert.Equal(HttpStatusCode.Created, next.Status);
        Assert.True(forcedAt.Elapsed < TimeSpan.FromSeconds(5), $"the waiter got the lock {forcedAt.ElapsedMilliseconds} ms after the force-release");
        Assert.Equal("forced", (await client.CheckAsync(key, holder.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task The_service_remembers_at_least_the_last_16_leases_of_a_key()
    {
        var key = Keys.Unique(nameof(The_service_remembers_at_least_the_last_16_leases_of_a_key));
        var tokens = await LeasesOneAfterAnotherAsync(key, 16);

        foreach (var token in tokens)
        {
            Assert.Equal("released", (await Client.CheckAsync(key, token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
        }

        var records = fixture.Redis.Redis.GetDatabase();
        var ttl = await records.KeyTimeToLiveAsync(Keys.InRedis(key).Leases);
        Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(10));

        // Gone at most 10 minutes after the last lease ended: the last lease's own record too, and the fencing token,
        // which outlives them by days, names no token.
        Assert.InRange((await records.KeyTimeToLiveAsync(Keys.InRedis(key).LastLease))!.Value, TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(10));
        Assert.Matches("^[0-9]+$", (string?)await records.StringGetAsync(Keys.InRedis(key).Fence));
    }

    [Fact]
    public async Task A_key_keeps_the_records_of_its_last_33_leases_and_forgets_older_ones()
    {
        // The last lease's record and the 32 before it: a key taken over and over does not grow Redis.
        var key = Keys.Unique(nameof(A_key_keeps_the_records_of_its_last_33_leases_and_forgets_older_ones));
        var tokens = await LeasesOneAfterAnotherAsync(key, 40);

        Assert.Equal(32, await fixture.Redis.Redis.GetDatabase().SortedSetLengthAsync(Keys.InRedis(key).Leases));
        var reasons = new List<string?>();
        foreach (var token in tokens)
        {
            reasons.Add((await Client.CheckAsync(key, token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
        }

        // The older ones are ordered by when they began, in milliseconds: among leases begun in the same millisecond the
        // one forgotten is any of them, so the count is exact and the last 16 (the contract's) are always there.
        Assert.Equal(7, reasons.Count(r => r == "unknown"));
        Assert.Equal(33, reasons.Count(r => r == "released"));
        Assert.All(reasons.TakeLast(16), r => Assert.Equal("released", r));
    }

    // Acquires and releases the key `count` times; the tokens in order.
    private async Task<List<string>> LeasesOneAfterAnotherAsync(string key, int count)
    {
        var tokens = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
            tokens.Add(lease.Token);
            Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, lease.Token)).Status);
        }

        return tokens;
    }

    [Theory]
    [InlineData("release")]
    [InlineData("force")]
    [InlineData("shortened")]
    [InlineData("expiry")]
    public async Task A_watch_on_another_instance_answers_at_once_when_the_lease_ends(string how)
    {
        // The re-check a minute away: only the wake-ups under test (pub/sub, the expiry timer) can answer in time.
        await using var a = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck(), kestrel: true);
        await using var b = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck(), kestrel: true);
        var holderClient = new LockClient(a.CreateClient());
        var watcherClient = new LockClient(b.CreateClient());
        var key = Keys.Unique(nameof(A_watch_on_another_instance_answers_at_once_when_the_lease_ends) + how);
        var expiryTtl = TimeSpan.FromMilliseconds(3000);
        var sinceAcquire = Stopwatch.StartNew();
        var lease = await holderClient.AcquireOkAsync(key, how == "expiry" ? $"ttlMs={expiryTtl.TotalMilliseconds}" : "ttlMs=30000");
        var watch = watcherClient.SendAsync(HttpMethod.Get, $"/locks/{key}/{lease.Token}?waitMs=20000");

        // A short lease can expire before a starved machine opens the watch; the watch then answers "expired" at
        // once and is never seen open, which is still the behaviour under test.
        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(b.Engine().WatchingCount == 1 || watch.IsCompleted), TimeSpan.FromSeconds(10), "the watch to be open");

        var ended = Stopwatch.StartNew();
        switch (how)
        {
            case "release":
                Assert.Equal(HttpStatusCode.NoContent, (await holderClient.ReleaseAsync(key, lease.Token)).Status);
                break;
            case "force":
                Assert.True((await a.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
                break;
            case "shortened":
                Assert.Equal(HttpStatusCode.OK, (await holderClient.ExtendAsync(key, lease.Token, "ttlMs=200")).Status);
                break;
        }

        var reply = await watch;
        var expected = how switch { "release" => "released", "force" => "forced", _ => "expired" };
        Assert.Equal(expected, reply.AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());

        // Seconds, not 100 ms, so that a loaded machine cannot break it: the bench measures the latency. Without the
        // wake-up the watch would answer at its waitMs (20 s) or the TTL (30 s).
        // For "expiry" the lease ended no earlier than its TTL after the acquire was sent.
        var sinceEnd = how == "expiry" ? sinceAcquire.Elapsed - expiryTtl : ended.Elapsed;
        Assert.True(sinceEnd < TimeSpan.FromSeconds(5), $"the watch answered {sinceEnd.TotalMilliseconds:F0} ms after the lease ended ({how})");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(b.Engine().WatchingCount == 0), TimeSpan.FromSeconds(10), "the watch to close");
    }

    [Fact]
    public async Task A_watch_that_runs_out_while_the_lock_is_held_answers_200_with_the_lock()
    {
        var key = Keys.Unique(nameof(A_watch_that_runs_out_while_the_lock_is_held_answers_200_with_the_lock));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
        var started = Stopwatch.StartNew();

        var reply = await Client.SendAsync(HttpMethod.Get, $"/locks/{key}/{lease.Token}?waitMs=300");

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.True(started.ElapsedMilliseconds >= 290, $"answered after {started.ElapsedMilliseconds} ms");
        Assert.Equal(lease.FencingToken, reply.Json.GetProperty("fencingToken").GetInt64());
        Assert.False(reply.Json.TryGetProperty("token", out _));
    }

    [Fact]
    public async Task Watches_have_their_own_bound_and_never_take_a_waiters_place()
    {
        await using var service = new LockServiceFactory(
            fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Locks:MaxWatchers"] = "1", ["Locks:MaxWaiters"] = "1" });
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(Watches_have_their_own_bound_and_never_take_a_waiters_place));
        var lease = await client.AcquireOkAsync(key, "ttlMs=30000");
        var watch = client.SendAsync(HttpMethod.Get, $"/locks/{key}/{lease.Token}?waitMs=20000");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(service.Engine().WatchingCount == 1), TimeSpan.FromSeconds(10), "the watch to be open");

        var second = await client.SendAsync(HttpMethod.Get, $"/locks/{key}/{lease.Token}?waitMs=20000");
        second.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.NotNull(second.Headers.RetryAfter);
        var waiter = client.AcquireAsync(key, "waitMs=20000");
        await service.WaitForWaitersAsync(1);

        Assert.Equal(HttpStatusCode.NoContent, (await client.ReleaseAsync(key, lease.Token)).Status);
        Assert.Equal(HttpStatusCode.Created, (await waiter).Status);
        (await watch).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [Theory]
    [InlineData("waitMs=-1")]
    [InlineData("waitMs=60001")]
    [InlineData("waitMs=1.5")]
    [InlineData("ttlMs=100")]
    public async Task A_bad_watch_is_400_and_changes_nothing(string query)
    {
        var key = Keys.Unique(nameof(A_bad_watch_is_400_and_changes_nothing));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");

        (await Client.SendAsync(HttpMethod.Get, $"/locks/{key}/{lease.Token}?{query}")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");

        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, lease.Token)).Status);
    }
}
