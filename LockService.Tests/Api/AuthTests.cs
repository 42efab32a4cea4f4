using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Api;

public sealed class AuthFixture : ApiFixture
{
    public const string BillingKey = "billing-key-0123456789abcdef";
    public const string ShippingKey = "shipping-key-0123456789abcdef";

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Auth:ApiKeys:0:Key"] = BillingKey,
        ["Auth:ApiKeys:0:Tenant"] = "billing",
        ["Auth:ApiKeys:1:Key"] = ShippingKey,
        ["Auth:ApiKeys:1:Tenant"] = "shipping",
    };

    public LockClient As(string apiKey, string scheme = "Bearer")
    {
        var http = Factory.CreateClient();
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"{scheme} {apiKey}");
        return new LockClient(http);
    }
}

public sealed class AuthTests(AuthFixture fixture) : IClassFixture<AuthFixture>
{
    public static TheoryData<string?> BadAuthorization() => new()
    {
        null,
        "Bearer wrong-key-0123456789abcdef",
        "Bearer ",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        AuthFixture.BillingKey,
        "Bearer billing-key-0123456789abcdeX",
    };

    [Theory]
    [MemberData(nameof(BadAuthorization))]
    public async Task Lock_requests_without_a_valid_key_are_401_with_www_authenticate_and_change_nothing(string? authorization)
    {
        var key = Keys.Unique(nameof(Lock_requests_without_a_valid_key_are_401_with_www_authenticate_and_change_nothing));
        var headers = authorization is null ? null : new Dictionary<string, string> { ["Authorization"] = authorization };

        foreach (var resource in LeaseResource.All)
        {
            foreach (var (method, path) in new[] { (HttpMethod.Post, resource.AcquirePath(key)), (HttpMethod.Get, resource.Path(key)), (HttpMethod.Delete, resource.Path(key, new string('a', 32))) })
            {
                var reply = await fixture.Client.SendAsync(method, path, headers: headers);

                reply.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
                Assert.Equal("Bearer", reply.Headers.WwwAuthenticate.ToString());
            }

            await resource.AssertFreeAsync(fixture.As(AuthFixture.BillingKey), key);
        }
    }

    [Fact]
    public async Task The_401_comes_before_413_415_and_400()
    {
        var big = "{\"owner\":\"" + new string('x', 5000) + "\"}";

        (await fixture.Client.SendAsync(HttpMethod.Post, "/locks/%7Bbad%7D", big)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await fixture.Client.SendAsync(HttpMethod.Post, "/locks/ok", "x", "text/plain")).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await fixture.Client.SendAsync(HttpMethod.Post, "/locks/ok?ttl=1")).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task A_valid_key_works_and_the_scheme_is_case_insensitive()
    {
        var key = Keys.Unique(nameof(A_valid_key_works_and_the_scheme_is_case_insensitive));

        var lease = await fixture.As(AuthFixture.BillingKey, "bearer").AcquireOkAsync(key);

        Assert.Equal(HttpStatusCode.NoContent, (await fixture.As(AuthFixture.BillingKey, "BEARER").ReleaseAsync(key, lease.Token)).Status);
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    [InlineData("/metrics")]
    [InlineData("/swagger/v1/swagger.json")]
    public async Task Health_metrics_and_swagger_stay_open(string path)
    {
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.SendAsync(HttpMethod.Get, path)).Status);
    }

    [Fact]
    public async Task The_same_lock_name_in_two_tenants_is_two_locks_and_no_tenant_can_touch_the_other()
    {
        var key = Keys.Unique(nameof(The_same_lock_name_in_two_tenants_is_two_locks_and_no_tenant_can_touch_the_other));
        var billing = fixture.As(AuthFixture.BillingKey);
        var shipping = fixture.As(AuthFixture.ShippingKey);

        var billingLease = await billing.AcquireOkAsync(key, "owner=billing-job");
        var shippingLease = await shipping.AcquireOkAsync(key, "owner=shipping-job");

        Fences.AssertTimeBased(billingLease.FencingToken);
        Fences.AssertTimeBased(shippingLease.FencingToken);
        Assert.Equal("shipping-job", (await shipping.InspectAsync(key)).Json.GetProperty("owner").GetString());
        (await shipping.ReleaseAsync(key, billingLease.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await shipping.ExtendAsync(key, billingLease.Token, "ttlMs=90000")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await shipping.CheckAsync(key, billingLease.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.Equal(HttpStatusCode.OK, (await billing.CheckAsync(key, billingLease.Token)).Status);
        Assert.True(await fixture.Redis.Redis.GetDatabase().KeyExistsAsync(Keys.InRedis(key, "billing").Lock));
        Assert.True(await fixture.Redis.Redis.GetDatabase().KeyExistsAsync(Keys.InRedis(key, "shipping").Lock));
    }

    [Fact]
    public async Task Neither_api_keys_nor_tokens_reach_the_log()
    {
        var key = Keys.Unique(nameof(Neither_api_keys_nor_tokens_reach_the_log));
        await fixture.Client.SendAsync(HttpMethod.Post, $"/locks/{key}", headers: new Dictionary<string, string> { ["Authorization"] = "Bearer not-a-key-but-a-secret-guess" });
        var billing = fixture.As(AuthFixture.BillingKey);
        var lease = await billing.AcquireOkAsync(key);
        await billing.ExtendAsync(key, lease.Token);
        await billing.ReleaseAsync(key, lease.Token);
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Log.All.Contains("responded 204", StringComparison.Ordinal)), TimeSpan.FromSeconds(5), "the release's log line in: " + fixture.Factory.Log.All);

        var log = fixture.Factory.Log.All;
        Assert.DoesNotContain(AuthFixture.BillingKey, log);
        Assert.DoesNotContain("not-a-key-but-a-secret-guess", log);
        Assert.DoesNotContain(lease.Token, log);
    }

    [Fact]
    public async Task Swagger_offers_the_bearer_scheme()
    {
        var document = (await fixture.Client.SendAsync(HttpMethod.Get, "/swagger/v1/swagger.json")).Json;

        var scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer");
        Assert.Equal("http", scheme.GetProperty("type").GetString());
        Assert.Equal("bearer", scheme.GetProperty("scheme").GetString());
    }
}

public sealed class RateLimitFixture : ApiFixture
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["RateLimit:PermitsPerSecond"] = "5" };
}

public sealed class RateLimitTests(RateLimitFixture fixture) : IClassFixture<RateLimitFixture>
{
    [Fact]
    public async Task Past_the_rate_requests_get_429_with_retry_after_and_then_recover()
    {
        var key = Keys.Unique(nameof(Past_the_rate_requests_get_429_with_retry_after_and_then_recover));
        // All at once, so that a slow machine cannot spread them over enough refills to never run the bucket dry.
        var sent = Stopwatch.StartNew();
        var replies = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => fixture.Client.InspectAsync(key)));
        var elapsed = sent.Elapsed;

        var limited = replies.First(r => r.Status == HttpStatusCode.TooManyRequests);
        limited.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.InRange(limited.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));

        // A bucket of 5 that gets 5 more each second: at least the 5 pass, and no more than the refills can explain.
        var passed = replies.Count(r => r.Status == HttpStatusCode.NotFound);
        Assert.InRange(passed, 5, 5 + (5 * ((int)elapsed.TotalSeconds + 1)));
        Assert.All(replies, r => Assert.Contains(r.Status, new[] { HttpStatusCode.NotFound, HttpStatusCode.TooManyRequests }));

        await RedisServer.WaitUntilAsync(
            async () => (await fixture.Client.InspectAsync(key)).Status == HttpStatusCode.NotFound,
            TimeSpan.FromSeconds(5),
            "the bucket to refill");
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.SendAsync(HttpMethod.Get, "/health/live")).Status);
    }
}
