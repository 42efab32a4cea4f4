using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Api;

/// <summary>
/// What an operator listing costs Redis: one page reads a bounded part of the keyspace whatever the prefix, so that a
/// prefix matching nothing over many keys cannot make one request scan whole nodes (and hold up every acquire behind it);
/// the page then comes back short or empty, with a cursor that walks on to the end.
/// </summary>
public sealed class ListingCostTests
{
    // The keyspace: many times what one page may read, so that a page that reads it all cannot pass.
    private const int Filler = 30_000;

    // One page's bound: SCAN calls, and the keys they ask for (COUNT) in total.
    private const int MaxScanCalls = 16, MaxKeysRead = 10_010;

    [RedisServerTheory]
    [InlineData("locks", "lock:")]
    [InlineData("semaphores", "sem:")]
    public async Task A_page_reads_a_bounded_part_of_the_keyspace_whatever_the_prefix_and_the_cursor_walks_to_every_match(string resource, string keyPrefix)
    {
        // Every command is in the slow log, with its arguments: what each page asked of Redis, counted exactly.
        await using var redis = await RedisServer.StartNewAsync("--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000");
        var admin = ConfigurationOptions.Parse(redis.ConnectionString);
        admin.AllowAdmin = true;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(admin);
        var db = connection.GetDatabase();
        var batch = db.CreateBatch();
        var writes = Enumerable.Range(0, Filler)
            .Select(i => batch.StringSetAsync($"{keyPrefix}{{filler-{i:00000}}}", "x", TimeSpan.FromMinutes(10)))
            .ToList();
        batch.Execute();
        await Task.WhenAll(writes);

        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());
        var rare = new[] { "rare-a", "rare-b", "rare-c" };
        foreach (var key in rare)
        {
            var acquire = resource == "locks" ? $"/locks/{key}?ttlMs=60000" : $"/semaphores/{key}?limit=2&ttlMs=60000";
            Assert.Equal(HttpStatusCode.Created, (await client.SendAsync(HttpMethod.Post, acquire)).Status);
        }

        var (nothingPages, nothingFound) = await WalkAsync(client, connection, resource, "nothing-");
        Assert.Empty(nothingFound);
        Assert.InRange(nothingPages, Filler / MaxKeysRead, 1000);

        var (rarePages, rareFound) = await WalkAsync(client, connection, resource, "rare-");
        Assert.Equal(rare, rareFound.Distinct().Order());
        Assert.InRange(rarePages, Filler / MaxKeysRead, 1000);
    }

    // Follows the listing of the prefix to its end: every page within the bound, the first (over a keyspace larger than a
    // page may read) empty of a prefix matching nothing yet with a cursor. The count of pages and the keys found.
    private static async Task<(int Pages, List<string> Found)> WalkAsync(LockClient client, ConnectionMultiplexer connection, string resource, string prefix)
    {
        var server = connection.GetServers().Single();
        var found = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            await server.ExecuteAsync("SLOWLOG", "RESET");
            var query = $"/admin/{resource}?prefix={prefix}&limit=100" + (cursor is null ? "" : "&cursor=" + cursor);
            var reply = await client.SendAsync(HttpMethod.Get, query);
            Assert.True(reply.Status == HttpStatusCode.OK, $"{query}: {(int)reply.Status} {reply.Body}");
            pages++;
            found.AddRange(reply.Json.GetProperty(resource).EnumerateArray().Select(e => e.GetProperty("key").GetString()!));
            cursor = reply.Json.GetProperty("cursor").GetString();

            var counts = await ScanCountsAsync(server);
            Assert.True(counts.Count is > 0 and <= MaxScanCalls, $"page {pages} of '{prefix}': {counts.Count} SCAN calls");
            Assert.True(counts.Sum() <= MaxKeysRead, $"page {pages} of '{prefix}': SCAN asked for {counts.Sum()} keys in {counts.Count} calls");
            Assert.True(pages > 1 || cursor is not null, $"the first page of '{prefix}' read the whole keyspace of {Filler} keys");
            Assert.True(pages < 1000, "the listing does not end");
        }
        while (cursor is not null);

        return (pages, found);
    }

    // The COUNT of each SCAN in the slow log (an entry is id, time, duration, the command's arguments, client, name).
    private static async Task<List<long>> ScanCountsAsync(IServer server)
    {
        var entries = (RedisResult[])(await server.ExecuteAsync("SLOWLOG", "GET", "100000"))!;
        return [.. entries
            .Select(entry => ((RedisResult[])((RedisResult[])entry!)[3]!).Select(a => (string)a!).ToArray())
            .Where(args => args[0].Equals("SCAN", StringComparison.OrdinalIgnoreCase))
            .Select(args => long.Parse(args[Array.FindIndex(args, a => a.Equals("COUNT", StringComparison.OrdinalIgnoreCase)) + 1], CultureInfo.InvariantCulture))];
    }
}

public sealed class OperatorRateLimitFixture : ApiFixture
{
    // Two more tenants, each with an admin and a client key, whose buckets no other test of the class touches.
    public const string ReturnsAdmin = "returns-admin-0123456789abcdef", ReturnsClient = "returns-client-0123456789abcdef";
    public const string RefundsAdmin = "refunds-admin-0123456789abcdef", RefundsClient = "refunds-client-0123456789abcdef";

    protected override IDictionary<string, string?> Settings => Operators.Keys(new Dictionary<string, string?>
    {
        ["RateLimit:PermitsPerSecond"] = "3",
        ["Auth:ApiKeys:3:Key"] = ReturnsAdmin,
        ["Auth:ApiKeys:3:Tenant"] = "returns",
        ["Auth:ApiKeys:3:Role"] = "admin",
        ["Auth:ApiKeys:4:Key"] = ReturnsClient,
        ["Auth:ApiKeys:4:Tenant"] = "returns",
        ["Auth:ApiKeys:5:Key"] = RefundsAdmin,
        ["Auth:ApiKeys:5:Tenant"] = "refunds",
        ["Auth:ApiKeys:5:Role"] = "admin",
        ["Auth:ApiKeys:6:Key"] = RefundsClient,
        ["Auth:ApiKeys:6:Tenant"] = "refunds",
    });

    public LockClient As(string apiKey) => Operators.As(Factory, apiKey);
}

/// <summary>
/// Operator requests go through the rate limit like every other request: per tenant, with a 429 past it; in a bucket of
/// their own, so that operators and lock clients of one tenant cannot use up each other's.
/// </summary>
public sealed class OperatorRateLimitTests(OperatorRateLimitFixture fixture) : IClassFixture<OperatorRateLimitFixture>
{
    [Fact]
    public async Task Past_the_rate_listings_get_429_with_retry_after_for_that_tenant_only_and_then_recover()
    {
        var billing = fixture.As(OperatorFixture.BillingAdmin);
        var shipping = fixture.As(OperatorFixture.ShippingAdmin);
        var prefix = Keys.Unique("limited");

        // All at once, so that however slow each request is, they meet the bucket within a short time: a bucket of 3 that
        // gets 3 more each second lets the first 3 through and at most 3 more per second elapsed (and one refill more,
        // whose tick may fall at any point of the first second).
        var elapsed = Stopwatch.StartNew();
        var replies = await Task.WhenAll(Enumerable.Range(0, 10)
            .Select(i => billing.SendAsync(HttpMethod.Get, $"/admin/{(i % 2 == 0 ? "locks" : "semaphores")}?prefix={prefix}")));
        var seconds = elapsed.Elapsed.TotalSeconds;
        var statuses = string.Join(", ", replies.Select(r => (int)r.Status));

        Assert.All(replies, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, statuses));
        var passed = replies.Count(r => r.Status == HttpStatusCode.OK);
        Assert.True(passed >= 3, $"a full bucket of 3 let {passed} through: {statuses}");
        Assert.True(passed <= 3 + (3 * ((int)seconds + 1)), $"{passed} passed in {seconds:0.00} s at 3 a second: {statuses}");
        var limited = replies.FirstOrDefault(r => r.Status == HttpStatusCode.TooManyRequests);
        Assert.True(limited is not null, $"10 listings at once, over a rate of 3 a second, and no 429 in {seconds:0.00} s: {statuses}");
        limited.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.InRange(limited.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));

        // Another tenant has its own bucket.
        Assert.Equal(HttpStatusCode.OK, (await shipping.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}")).Status);

        await RedisServer.WaitUntilAsync(
            async () => (await billing.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}")).Status == HttpStatusCode.OK,
            TimeSpan.FromSeconds(5),
            "the bucket to refill");
    }

    [Fact]
    public Task Operator_listings_past_the_rate_leave_the_tenants_lock_traffic_its_whole_bucket() => AssertWholeWhileOtherRunsDryAsync(
        OperatorRateLimitFixture.ReturnsAdmin, "/admin/locks?prefix=", OperatorRateLimitFixture.ReturnsClient, "/locks/", HttpStatusCode.NotFound);

    [Fact]
    public Task Lock_traffic_past_the_rate_leaves_the_tenants_operators_their_whole_bucket() => AssertWholeWhileOtherRunsDryAsync(
        OperatorRateLimitFixture.RefundsClient, "/locks/", OperatorRateLimitFixture.RefundsAdmin, "/admin/locks?prefix=", HttpStatusCode.OK);

    // Keeps one bucket of a tenant dry (four callers asking again as soon as answered) and, once it is, sends a full bucket's
    // worth (3) of the other kind of request of the same tenant: each of the three gets its answer, none a 429. Had both
    // kinds one bucket, the three would find it empty.
    private async Task AssertWholeWhileOtherRunsDryAsync(string hammerKey, string hammerRoute, string otherKey, string otherRoute, HttpStatusCode answer)
    {
        var key = Keys.Unique("bucket");
        var (hammer, hammerPath) = (fixture.As(hammerKey), hammerRoute + key);
        var (other, otherPath) = (fixture.As(otherKey), otherRoute + key);
        var hammered = new ConcurrentQueue<HttpStatusCode>();
        using var stop = new CancellationTokenSource();
        var callers = Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                hammered.Enqueue((await hammer.SendAsync(HttpMethod.Get, hammerPath)).Status);
                await Task.Yield();
            }
        }).ToList();

        var trickled = new List<HttpStatusCode>();
        try
        {
            await RedisServer.WaitUntilAsync(
                () => Task.FromResult(hammered.Contains(HttpStatusCode.TooManyRequests)), TimeSpan.FromSeconds(10), "the hammered bucket to run dry");
            for (var i = 0; i < 3; i++)
            {
                trickled.Add((await other.SendAsync(HttpMethod.Get, otherPath)).Status);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(callers);
        }

        Assert.All(trickled, status => Assert.Equal(answer, status));
    }
}
