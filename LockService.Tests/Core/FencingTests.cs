using System.Diagnostics;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Core;

/// <summary>
/// Fencing tokens: max(Redis time in microseconds, the key's last token + 1), remembered only for
/// Locks:FenceRetentionMs after the key's last use, so they keep increasing when Redis loses its data and no
/// key lives forever.
/// </summary>
public sealed class FencingTests(EngineFixture fixture) : IClassFixture<EngineFixture>
{
    private IDatabase Db => fixture.Redis.Redis.GetDatabase();

    [Fact]
    public async Task Tokens_near_2_pow_51_stay_exact_and_count_up_from_the_last_one()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(Tokens_near_2_pow_51_stay_exact_and_count_up_from_the_last_one)));
        var keys = LockKeys.For("lock:", name);

        // Above Redis's clock, with low digits that %.14g (Lua's tostring) would round away.
        const long last = (1L << 51) + 123_457;
        await Db.StringSetAsync(keys.Fence, last);

        var first = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(5_000))).Lease!;
        Assert.Equal(last + 1, first.FencingToken);
        Assert.Equal((last + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), ((string?)await Db.StringGetAsync(keys.Lock))!.Split('\n')[1]);
        Assert.Equal(last + 1, (await fixture.Engine.InspectAsync(name))!.FencingToken);
        Assert.True((await fixture.Engine.ReleaseAsync(name, first.Token)).Released);

        var second = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(5_000))).Lease!;
        Assert.Equal(last + 2, second.FencingToken);
        Assert.Equal(last + 2, await Fences.LastInRedisAsync(Db, keys.Fence));
        Assert.True(second.FencingToken < 1L << 53);
    }

    [Fact]
    public async Task A_token_is_redis_time_in_microseconds_and_the_lease_times_come_from_the_same_clock()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(A_token_is_redis_time_in_microseconds_and_the_lease_times_come_from_the_same_clock)));
        var before = await RedisMicrosAsync();
        var lease = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(5_000))).Lease!;
        var after = await RedisMicrosAsync();

        Assert.InRange(lease.FencingToken, before, after);
        Assert.InRange(lease.ExpiresAt.ToUnixTimeMilliseconds(), (before / 1000) + 5_000, (after / 1000) + 5_000);
    }

    [Fact]
    public async Task A_last_token_that_is_not_a_number_is_taken_for_none_and_the_lock_is_acquired()
    {
        // Written by hand: the script must not stop on it, having taken the lock already.
        var name = LeaseName.Of(Keys.Unique(nameof(A_last_token_that_is_not_a_number_is_taken_for_none_and_the_lock_is_acquired)));
        var keys = LockKeys.For("lock:", name);
        await Db.StringSetAsync(keys.Fence, "not a number");
        var before = await RedisMicrosAsync();

        var lease = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(5_000))).Lease!;

        Assert.True(lease.FencingToken >= before, $"{lease.FencingToken} is below Redis's clock {before}");
        Assert.Equal(lease.FencingToken, await Fences.LastInRedisAsync(Db, keys.Fence));
        Assert.True((await fixture.Engine.ReleaseAsync(name, lease.Token)).Released);
    }

    [Fact]
    public async Task Tokens_and_acquire_times_are_redis_time_whatever_its_microseconds_are()
    {
        // The script writes the token as TIME's seconds followed by its microseconds padded to 6 digits, and the time in ms
        // as the seconds and the first 3: a microsecond part below 100000 (one TIME in ten) must come out padded.
        var prefix = Keys.Unique(nameof(Tokens_and_acquire_times_are_redis_time_whatever_its_microseconds_are));
        // Until a tenth of a second with such a part has gone by: any run longer than a second has one.
        var padded = false;
        var elapsed = Stopwatch.StartNew();
        for (var i = 0; !padded && elapsed.Elapsed < TimeSpan.FromSeconds(5); i++)
        {
            var before = await RedisMicrosAsync();
            var lease = (await fixture.Engine.AcquireAsync(LeaseName.Of($"{prefix}-{i}"), new AcquireRequest(1_000))).Lease!;
            var after = await RedisMicrosAsync();

            Assert.InRange(lease.FencingToken, before, after);
            Assert.Equal(lease.FencingToken / 1000, lease.AcquiredAt.ToUnixTimeMilliseconds());
            Assert.Equal(lease.AcquiredAt.AddMilliseconds(1_000), lease.ExpiresAt);
            padded = lease.FencingToken % 1_000_000 < 100_000;
        }

        Assert.True(padded, $"no token had a microsecond part below 100000 in {elapsed.Elapsed}");
    }

    [Fact]
    public async Task The_last_token_is_kept_for_the_retention_past_the_leases_expiry_so_past_its_release_too()
    {
        var name = LeaseName.Of(Keys.Unique(nameof(The_last_token_is_kept_for_the_retention_past_the_leases_expiry_so_past_its_release_too)));
        var fence = LockKeys.For("lock:", name).Fence;
        var retention = TimeSpan.FromMilliseconds(new LeaseOptions().FenceRetentionMs);
        var lease = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(50_000))).Lease!;
        Assert.InRange((await Db.KeyTimeToLiveAsync(fence))!.Value, retention + TimeSpan.FromSeconds(40), retention + TimeSpan.FromSeconds(50));

        await Db.KeyExpireAsync(fence, TimeSpan.FromMinutes(5));
        Assert.NotNull((await fixture.Engine.ExtendAsync(name, lease.Token, new ExtendRequest(60_000))).Lease);
        Assert.InRange((await Db.KeyTimeToLiveAsync(fence))!.Value, retention + TimeSpan.FromSeconds(50), retention + TimeSpan.FromSeconds(60));

        Assert.True((await fixture.Engine.ReleaseAsync(name, lease.Token)).Released);
        Assert.InRange((await Db.KeyTimeToLiveAsync(fence))!.Value, retention + TimeSpan.FromSeconds(50), retention + TimeSpan.FromSeconds(60));

        var next = (await fixture.Engine.AcquireAsync(name, new AcquireRequest(50_000))).Lease!;
        Assert.True((await fixture.Engine.ForceReleaseAsync(name)).Released);
        Assert.InRange((await Db.KeyTimeToLiveAsync(fence))!.Value, retention + TimeSpan.FromSeconds(40), retention + TimeSpan.FromSeconds(50));
        Assert.True(next.FencingToken > lease.FencingToken);
    }

    [RedisServerFact]
    public async Task Tokens_keep_increasing_across_FLUSHALL_and_a_restart_without_persistence()
    {
        // A Redis of its own: FLUSHALL and a restart would pull the shared one from under the other tests.
        await using var server = await RedisServer.StartNewAsync();
        var options = ConfigurationOptions.Parse(server.ConnectionString);
        options.AllowAdmin = true;
        options.AbortOnConnectFail = false;
        options.ReconnectRetryPolicy = new LinearRetry(100);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(options);
        using var engine = TestLocks.Create(redis, new LeaseOptions(), new RedisOptions { ConnectionString = server.ConnectionString, TimeoutMs = 1_000 });
        var name = LeaseName.Of(Keys.Unique(nameof(Tokens_keep_increasing_across_FLUSHALL_and_a_restart_without_persistence)));
        var fences = new List<long>();

        var lease = (await engine.AcquireAsync(name, new AcquireRequest(60_000))).Lease!;
        fences.Add(lease.FencingToken);
        await redis.GetServer(redis.GetEndPoints()[0]).FlushAllDatabasesAsync();

        // The lock and its last token are gone: the next holder gets a larger token all the same.
        fences.Add((await engine.AcquireAsync(name, new AcquireRequest(60_000))).Lease!.FencingToken);

        await server.StopAsync();
        await server.StartAsync();
        AcquireResult<LockLease, NoDetail>? afterRestart = null;
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                try
                {
                    afterRestart = await engine.AcquireAsync(name, new AcquireRequest(60_000));
                    return afterRestart.Acquired;
                }
                catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(15),
            "an acquire on the restarted Redis");
        fences.Add(afterRestart!.Lease!.FencingToken);

        Fences.AssertStrictlyIncreasing(fences);
    }

    [Fact]
    public async Task Every_key_left_behind_has_a_ttl_and_locks_and_fencing_tokens_are_gone_after_the_retention()
    {
        var prefix = $"fence-{Guid.NewGuid():N}:";
        // Retention 2 s: the keys must still be there when the loop below is done and they are looked at (with 400 ms,
        // a loaded machine let them all expire first), and short enough to wait for.
        var options = new LeaseOptions { KeyPrefix = prefix, DefaultTtlMs = 100, MaxTtlMs = 1_000, FenceRetentionMs = 2_000 };
        using var engine = TestLocks.Create(fixture.Redis.Redis, options, new RedisOptions { ConnectionString = fixture.Redis.ConnectionString });
        var names = Enumerable.Range(0, 20).Select(i => LeaseName.Of($"name-{i}")).ToArray();
        var last = new Dictionary<LeaseName, long>();
        foreach (var (name, i) in names.Select((n, i) => (n, i)))
        {
            var request = new AcquireRequest(1_000, Owner: i % 2 == 0 ? "job" : null, IdempotencyKey: i % 3 == 0 ? $"retry-{i}" : null);
            var lease = (await engine.AcquireAsync(name, request)).Lease!;
            last[name] = lease.FencingToken;
            if (i % 2 == 0)
            {
                Assert.True((await engine.ReleaseAsync(name, lease.Token)).Released);
            }
        }

        // Every key the engine left has a TTL: a last fencing token its retention past the lease's expiry, lease records
        // ten minutes past the last lease's end (they say why a lease ended), a lock its own TTL.
        var left = ScanKeys(prefix);
        Assert.NotEmpty(left);
        foreach (var key in left)
        {
            var pttl = (long)await Db.ExecuteAsync("PTTL", key);   // -1: no TTL; -2: expired meanwhile
            Assert.True(pttl != -1, $"{key} has no TTL");
            var bound = IsLeaseRecord(key) ? 1_000 + 600_000 : 1_000 + 2_000;
            Assert.True(pttl <= bound, $"{key} lives {pttl} ms more, past its bound of {bound} ms");
        }

        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(ScanKeys(prefix).All(IsLeaseRecord)),
            TimeSpan.FromSeconds(10),
            "every lock and last fencing token to expire");

        // Forgotten, yet the next token is still larger: Redis's clock moved on.
        var again = (await engine.AcquireAsync(names[0], new AcquireRequest(100))).Lease!;
        Assert.True(again.FencingToken > last[names[0]]);
    }

    // Why the last leases ended: kept ten minutes past their end, not for the fencing retention.
    private static bool IsLeaseRecord(RedisKey key) =>
        key.ToString().EndsWith(":leases", StringComparison.Ordinal) || key.ToString().EndsWith(":last", StringComparison.Ordinal);

    private List<RedisKey> ScanKeys(string prefix)
    {
        var server = fixture.Redis.Redis.GetServer(fixture.Redis.Redis.GetEndPoints()[0]);
        return server.Keys(pattern: prefix + "*", pageSize: 1000).ToList();
    }

    private async Task<long> RedisMicrosAsync()
    {
        var time = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        return ((long)time[0] * 1_000_000) + (long)time[1];
    }
}
