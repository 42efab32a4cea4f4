using System.Net;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Faults;

/// <summary>The service over the shared Redis with force-release open (authentication off), as an operator would clean up.</summary>
public sealed class ForeignDataFixture : ApiFixture
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Operators:AllowForceReleaseWithoutAuth"] = "true" };
}

/// <summary>
/// Keys of a name that hold what the service never writes there (a key of another type, a value or a fencing token
/// written by hand, a lock made persistent): every operation answers a problem that names the key (503
/// redis_data_invalid) or its ordinary answer, never a 500, and no lease is left to a token nobody was handed.
/// </summary>
public sealed class ForeignDataTests(ForeignDataFixture fixture) : IClassFixture<ForeignDataFixture>
{
    private const string RandomToken = "0123456789abcdef0123456789abcdef";

    private LockClient Client => fixture.Client;

    private IDatabase Db => fixture.Redis.Redis.GetDatabase();

    [Theory]
    [InlineData("lock")]
    [InlineData("fence")]
    [InlineData("last")]
    [InlineData("leases")]
    public async Task Every_lock_operation_on_a_key_of_another_type_is_a_problem_naming_it_and_leaves_no_lock(string role)
    {
        var key = Keys.Unique($"wrongtype-lock-{role}");
        var keys = Keys.InRedis(key);

        // One lease first, so that the next acquire finds a last lease to move to the older ones (it writes all four keys).
        var first = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, first.Token)).Status);
        var wrong = role switch { "lock" => keys.Lock, "fence" => keys.Fence, "last" => keys.LastLease, _ => keys.Leases };
        var fenceBefore = (string?)await Db.StringGetAsync(keys.Fence);
        await Db.KeyDeleteAsync(wrong);
        if (role == "leases")
        {
            await Db.StringSetAsync(wrong, "not a sorted set");
        }
        else
        {
            // A list: no kind of this service writes one. The lock key gets no TTL, as a key written by hand has none.
            await Db.ListRightPushAsync(wrong, "not a lock");
        }

        var acquire = await Client.AcquireAsync(key, "ttlMs=30000");
        AssertNamed(acquire, wrong);
        var answers = new[]
        {
            await Client.AcquireAsync(key, "ttlMs=30000&owner=me&maxHoldMs=60000"),
            await Client.ReleaseAsync(key, RandomToken),
            await Client.ExtendAsync(key, RandomToken),
            await Client.CheckAsync(key, RandomToken),
            await Client.InspectAsync(key),
            await Client.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}"),
        };
        foreach (var answer in answers)
        {
            AssertProblemNot500(answer, wrong);
        }

        var listing = await Client.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={key}");
        Assert.Equal(HttpStatusCode.OK, listing.Status);
        Assert.Empty(listing.Json.GetProperty("locks").EnumerateArray());

        if (role != "lock")
        {
            // Nothing was left behind: no lock under a token nobody received, the fencing key as it was.
            Assert.False(await Db.KeyExistsAsync(keys.Lock), "the failed acquire left its lock behind");
            if (role == "fence")
            {
                Assert.Equal(RedisType.List, await Db.KeyTypeAsync(keys.Fence));
            }
            else
            {
                Assert.Equal(fenceBefore, (string?)await Db.StringGetAsync(keys.Fence));
            }
        }

        await Db.KeyDeleteAsync(wrong);
        var fixedUp = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.True(fixedUp.FencingToken > first.FencingToken);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, fixedUp.Token)).Status);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Every_semaphore_operation_on_a_key_of_another_type_is_a_problem_naming_it_and_takes_no_permit(int index)
    {
        var key = Keys.Unique($"wrongtype-sem-{index}");
        var all = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        var wrong = new[] { all.Semaphore, all.Permits, all.Slots, all.Fence, all.Leases }[index];
        var first = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, first.Token)).Status);
        await Db.KeyDeleteAsync(wrong);
        await Db.StringSetAsync(wrong, "not what a semaphore keeps here");

        AssertNamed(await Client.AcquirePermitAsync(key, "limit=2&ttlMs=30000"), wrong);
        foreach (var answer in new[]
        {
            await Client.AcquirePermitAsync(key, "limit=2&ttlMs=30000&owner=me&maxHoldMs=60000", default),
            await Client.ReleasePermitAsync(key, RandomToken),
            await Client.ExtendPermitAsync(key, RandomToken),
            await Client.CheckPermitAsync(key, RandomToken),
            await Client.InspectSemaphoreAsync(key),
            await Client.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/0"),
        })
        {
            AssertNamed(answer, wrong);
        }

        var listing = await Client.SendAsync(HttpMethod.Get, $"/admin/semaphores?prefix={key}");
        Assert.Equal(HttpStatusCode.OK, listing.Status);
        Assert.Empty(listing.Json.GetProperty("semaphores").EnumerateArray());
        if (index != 0)
        {
            Assert.Equal(0, await Db.SortedSetLengthAsync(all.Semaphore));
        }

        await Db.KeyDeleteAsync(wrong);
        var fixedUp = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");
        Assert.True(fixedUp.FencingToken > first.FencingToken);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, fixedUp.Token)).Status);
    }

    [Fact]
    public async Task A_lock_and_a_semaphore_sharing_a_prefix_no_longer_leave_a_lock_to_nobody()
    {
        // The review's case, through the engines (the service now refuses such prefixes at start): a semaphore's fence
        // hash where the lock keeps its fencing string. The acquire wrote the lock, then failed, and the name stayed held.
        var prefix = $"shared-{Guid.NewGuid():N}:";
        var name = LeaseName.Of("x");
        using var locks = TestLocks.Create(fixture.Redis.Redis, new LeaseOptions { KeyPrefix = prefix }, new RedisOptions { ConnectionString = fixture.Redis.ConnectionString });
        using var semaphores = TestSemaphores.Create(
            fixture.Redis.Redis, new SemaphoreOptions { KeyPrefix = prefix }, new LeaseOptions(), new RedisOptions { ConnectionString = fixture.Redis.ConnectionString });
        var permit = (await semaphores.AcquireAsync(name, 2, new AcquireRequest(500))).Lease!;
        Assert.True((await semaphores.ReleaseAsync(name, permit.Token)).Released);

        var failed = await Assert.ThrowsAsync<RedisServerException>(() => locks.AcquireAsync(name, new AcquireRequest(30_000)));
        Assert.False(await Db.KeyExistsAsync($"{prefix}{{x}}"), "the failed acquire left its lock behind");
        Assert.True(RedisFaults.IsBadData(failed), failed.Message);
        Assert.Contains($"{prefix}{{x}}:fence", RedisFaults.BadDataDetail(failed), StringComparison.Ordinal);
        var again = await Assert.ThrowsAsync<RedisServerException>(() => locks.AcquireAsync(name, new AcquireRequest(30_000)));
        Assert.True(RedisFaults.IsBadData(again), "the second acquire found the name held: " + again.Message);
    }

    [Theory]
    [InlineData("inf")]
    [InlineData("1e300")]
    [InlineData("9007199254740991")]
    [InlineData("9007199254740992")]
    [InlineData("123456789012345678901234567890")]
    public async Task A_last_fencing_token_no_token_below_2_pow_53_can_exceed_is_a_problem_and_acquires_nothing(string last)
    {
        var key = Keys.Unique("fence-too-high");
        var keys = Keys.InRedis(key);
        await Db.StringSetAsync(keys.Fence, last);

        AssertNamed(await Client.AcquireAsync(key, "ttlMs=30000"), keys.Fence);

        Assert.False(await Db.KeyExistsAsync(keys.Lock), "the refused acquire left its lock behind");
        Assert.Equal(last, (string?)await Db.StringGetAsync(keys.Fence));
        Assert.False(await Db.KeyExistsAsync(keys.LastLease), "the refused acquire left a lease record");

        var semaphore = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        await Db.HashSetAsync(semaphore.Fence, "0", last);
        AssertNamed(await Client.AcquirePermitAsync(key, "limit=1&ttlMs=30000"), semaphore.Fence);
        Assert.Equal(0, await Db.SortedSetLengthAsync(semaphore.Semaphore));
        Assert.Equal(last, (string?)await Db.HashGetAsync(semaphore.Fence, "0"));
    }

    [Fact]
    public async Task A_last_fencing_token_just_below_the_bound_gives_the_largest_token_and_then_a_problem()
    {
        var key = Keys.Unique("fence-at-bound");
        var keys = Keys.InRedis(key);
        const long largest = (1L << 53) - 1;
        await Db.StringSetAsync(keys.Fence, largest - 1);

        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.Equal(largest, lease.FencingToken);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, lease.Token)).Status);
        AssertNamed(await Client.AcquireAsync(key, "ttlMs=30000"), keys.Fence);
        Assert.False(await Db.KeyExistsAsync(keys.Lock));

        var semaphore = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        await Db.HashSetAsync(semaphore.Fence, "0", largest - 1);
        var permit = await Client.AcquirePermitOkAsync(key, "limit=1&ttlMs=30000");
        Assert.Equal(largest, permit.FencingToken);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, permit.Token)).Status);
        AssertNamed(await Client.AcquirePermitAsync(key, "limit=1&ttlMs=30000"), semaphore.Fence);
    }

    [Theory]
    [InlineData("-5")]
    [InlineData("-inf")]
    [InlineData("nan")]
    [InlineData("not a number")]
    [InlineData("")]
    public async Task A_last_fencing_token_below_the_clock_or_not_a_number_counts_as_none_and_the_token_is_redis_time(string last)
    {
        var key = Keys.Unique("fence-none");
        var keys = Keys.InRedis(key);
        await Db.StringSetAsync(keys.Fence, last);
        var semaphore = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        await Db.HashSetAsync(semaphore.Fence, "0", last);
        var before = await RedisMicrosAsync();

        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
        var permit = await Client.AcquirePermitOkAsync(key, "limit=1&ttlMs=30000");

        foreach (var token in new[] { lease.FencingToken, permit.FencingToken })
        {
            Assert.InRange(token, before, (1L << 53) - 1);
        }

        Assert.Equal(lease.FencingToken, await Fences.LastInRedisAsync(Db, keys.Fence));
        Assert.Equal(permit.FencingToken, (long)await Db.HashGetAsync(semaphore.Fence, "0"));
        var next = await Client.AcquireAsync(key, "ttlMs=30000");
        Assert.Equal(HttpStatusCode.Conflict, next.Status);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, lease.Token)).Status);
        Assert.True((await Client.AcquireOkAsync(key, "ttlMs=30000")).FencingToken > lease.FencingToken);
    }

    [Fact]
    public async Task A_lock_made_persistent_by_hand_is_named_by_inspection_and_its_holder_can_still_release_or_extend_it()
    {
        var key = Keys.Unique("persisted");
        var keys = Keys.InRedis(key);
        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
        Assert.True(await Db.KeyPersistAsync(keys.Lock));

        foreach (var answer in new[] { await Client.CheckAsync(key, lease.Token), await Client.InspectAsync(key), await Client.AcquireAsync(key) })
        {
            var problem = AssertNamed(answer, keys.Lock);
            Assert.Contains("no expiry", problem, StringComparison.Ordinal);
        }

        var listing = await Client.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={key}");
        Assert.Equal(HttpStatusCode.OK, listing.Status);
        Assert.Empty(listing.Json.GetProperty("locks").EnumerateArray());

        // The holder's extend gives it an expiry again, and inspection sees it as held.
        Assert.Equal(HttpStatusCode.OK, (await Client.ExtendAsync(key, lease.Token, "ttlMs=20000")).Status);
        Assert.InRange((long)(await Db.KeyTimeToLiveAsync(keys.Lock))!.Value.TotalMilliseconds, 1, 20_000);
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, lease.Token)).Status);
        Assert.True(await Db.KeyPersistAsync(keys.Lock));
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseAsync(key, lease.Token)).Status);
        Assert.Equal(HttpStatusCode.Created, (await Client.AcquireAsync(key)).Status);
    }

    [Fact]
    public async Task A_semaphore_made_persistent_by_hand_still_frees_its_permits_by_their_expiry()
    {
        // A semaphore's permits expire by their scores, not by the key's TTL: a PERSIST changes nothing a caller sees.
        var key = Keys.Unique("persisted-sem");
        var semaphore = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        var permit = await Client.AcquirePermitOkAsync(key, "limit=1&ttlMs=300");
        Assert.True(await Db.KeyPersistAsync(semaphore.Semaphore));

        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, permit.Token)).Status);
        var next = await Client.AcquirePermitAsync(key, "limit=1&ttlMs=30000&waitMs=5000");
        Assert.Equal(HttpStatusCode.Created, next.Status);
        Assert.Equal("expired", (await Client.CheckPermitAsync(key, permit.Token)).ReasonOf());
    }

    [Fact]
    public async Task Values_written_by_hand_in_a_lock_or_a_permit_record_are_a_problem_naming_the_key()
    {
        var key = Keys.Unique("hand-written");
        var keys = Keys.InRedis(key);
        await Db.StringSetAsync(keys.Lock, "a value written by hand", TimeSpan.FromSeconds(30));
        AssertNamed(await Client.InspectAsync(key), keys.Lock);
        AssertNamed(await Client.ExtendAsync(key, RandomToken), keys.Lock);
        AssertNamed(await Client.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}"), keys.Lock);
        Assert.Equal(HttpStatusCode.Conflict, (await Client.AcquireAsync(key)).Status);

        var semaphore = SemaphoreKeys.For(new SemaphoreOptions().KeyPrefix, LeaseName.Of(key));
        var permit = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");
        await Db.HashSetAsync(semaphore.Permits, permit.Token, "not a permit record");
        AssertNamed(await Client.CheckPermitAsync(key, permit.Token), semaphore.Permits);
        AssertNamed(await Client.ExtendPermitAsync(key, permit.Token), semaphore.Permits);
        AssertNamed(await Client.InspectSemaphoreAsync(key), semaphore.Permits);
        AssertNamed(await Client.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/0"), semaphore.Permits);
        AssertNamed(await Client.ReleasePermitAsync(key, permit.Token), semaphore.Permits);
        Assert.Equal(1, await Db.SortedSetLengthAsync(semaphore.Semaphore));
    }

    [Theory]
    [InlineData("persist")]
    [InlineData("overwrite")]
    public async Task A_stream_whose_lock_key_is_changed_by_hand_says_lost_and_leaves_no_lock(string how)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique($"stream-hand-{how}");
        var keys = Keys.InRedis(key);
        await using var stream = await LeaseEvents.OpenAsync(service.CreateClient(), key, "ttlMs=1500");
        Assert.Equal("acquired", (await stream.NextEventAsync()).Name);

        if (how == "persist")
        {
            Assert.True(await Db.KeyPersistAsync(keys.Lock));
        }
        else
        {
            await Db.StringSetAsync(keys.Lock, "a value written by hand", TimeSpan.FromSeconds(30));
        }

        // The next renewal or look (every ttlMs/3) finds it; comments before that are renewals.
        var next = await stream.NextEventAsync();
        Assert.Equal("lost", next.Name);
        Assert.Equal("unavailable", System.Text.Json.JsonDocument.Parse(next.Data).RootElement.GetProperty("reason").GetString());
        Assert.True(await stream.EndedAsync(), "the stream goes on after 'lost'");
        if (how == "persist")
        {
            Assert.False(await Db.KeyExistsAsync(keys.Lock), "the stream's lock, made persistent, was left behind");
        }
    }

    // A 503 redis_data_invalid whose detail names the Redis key; returns the detail.
    private static string AssertNamed(Reply reply, string redisKey)
    {
        var detail = reply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_data_invalid").GetProperty("detail").GetString()!;
        Assert.Contains($"'{redisKey}'", detail, StringComparison.Ordinal);
        return detail;
    }

    // What an operation that does not read the bad key may answer: its ordinary problem; else the key named.
    private static void AssertProblemNot500(Reply reply, string redisKey)
    {
        if (reply.Status == HttpStatusCode.ServiceUnavailable)
        {
            AssertNamed(reply, redisKey);
            return;
        }

        Assert.True((int)reply.Status is >= 400 and < 500, $"{(int)reply.Status}: {reply.Body}");
        Assert.Equal("application/problem+json", reply.MediaType);
    }

    private async Task<long> RedisMicrosAsync()
    {
        var time = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        return ((long)time[0] * 1_000_000) + (long)time[1];
    }
}
