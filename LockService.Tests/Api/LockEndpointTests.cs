using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Api;

public sealed class LockEndpointTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private LockClient Client => fixture.Client;

    [Fact]
    public async Task Acquire_returns_201_with_location_and_lease_body()
    {
        var key = Keys.Unique(nameof(Acquire_returns_201_with_location_and_lease_body));
        var reply = await Client.AcquireAsync(key, "ttlMs=5000&owner=billing-cron");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.Equal("application/json", reply.MediaType);
        var lease = reply.Lease;
        Assert.Equal(key, lease.Key);
        Assert.Matches("^[0-9a-f]{32}$", lease.Token);
        Fences.AssertTimeBased(lease.FencingToken);
        Assert.Equal(5000, lease.TtlMs);
        Assert.Equal("billing-cron", reply.Json.GetProperty("owner").GetString());
        var expiresAt = reply.Json.GetProperty("expiresAt").GetDateTimeOffset();
        Assert.InRange(expiresAt, DateTimeOffset.UtcNow.AddSeconds(-30), DateTimeOffset.UtcNow.AddSeconds(35));
        Assert.Equal($"/locks/{key}/{lease.Token}", reply.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task An_owner_is_written_alike_in_every_body_quotes_escaped_and_letters_as_they_are()
    {
        // A shell script that greps the raw body sees the same text in the 201 and in an inspection (a serializer with a
        // stricter encoder would write \u0022 and \u00E9 in one body and not the other).
        var key = Keys.Unique(nameof(An_owner_is_written_alike_in_every_body_quotes_escaped_and_letters_as_they_are));
        var acquired = await Client.AcquireAsync(key, "ttlMs=5000&owner=" + Uri.EscapeDataString("night \"batch\" café"));
        var inspected = await Client.InspectAsync(key);

        const string Owner = "\"owner\":\"night \\\"batch\\\" café\"";
        Assert.Contains(Owner, acquired.Body, StringComparison.Ordinal);
        Assert.Contains(Owner, inspected.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Acquire_without_parameters_uses_the_default_ttl_and_a_null_owner()
    {
        var reply = await Client.AcquireAsync(Keys.Unique(nameof(Acquire_without_parameters_uses_the_default_ttl_and_a_null_owner)));

        Assert.Equal(30_000, reply.Lease.TtlMs);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, reply.Json.GetProperty("owner").ValueKind);
    }

    [Fact]
    public async Task Acquire_of_a_held_lock_is_409_with_retry_after_and_retryAfterMs()
    {
        var key = Keys.Unique(nameof(Acquire_of_a_held_lock_is_409_with_retry_after_and_retryAfterMs));
        await Client.AcquireOkAsync(key, "ttlMs=4500");

        var reply = await Client.AcquireAsync(key);

        var problem = reply.AssertProblem(HttpStatusCode.Conflict, "lock_held");
        var retryAfterMs = problem.GetProperty("retryAfterMs").GetInt64();
        Assert.InRange(retryAfterMs, 1, 4500);
        Assert.Equal(TimeSpan.FromSeconds(Math.Ceiling(retryAfterMs / 1000.0)), reply.Headers.RetryAfter!.Delta);
    }

    [Fact]
    public async Task Parameters_can_come_from_a_json_body()
    {
        var key = Keys.Unique(nameof(Parameters_can_come_from_a_json_body));
        var reply = await Client.SendAsync(HttpMethod.Post, $"/locks/{key}", """{"ttlMs":7000,"waitMs":0,"owner":"from-body"}""");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.Equal(7000, reply.Lease.TtlMs);
        Assert.Equal("from-body", reply.Json.GetProperty("owner").GetString());
    }

    [Fact]
    public async Task Json_null_means_absent()
    {
        var key = Keys.Unique(nameof(Json_null_means_absent));
        var reply = await Client.SendAsync(HttpMethod.Post, $"/locks/{key}?ttlMs=6000", """{"ttlMs":null,"owner":null}""");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.Equal(6000, reply.Lease.TtlMs);
    }

    [Fact]
    public async Task Release_is_204_then_404_and_frees_the_lock()
    {
        var key = Keys.Unique(nameof(Release_is_204_then_404_and_frees_the_lock));
        var lease = await Client.AcquireOkAsync(key);

        var released = await Client.ReleaseAsync(key, lease.Token);
        var again = await Client.ReleaseAsync(key, lease.Token);

        Assert.Equal(HttpStatusCode.NoContent, released.Status);
        again.AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await Client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.Equal(HttpStatusCode.Created, (await Client.AcquireAsync(key)).Status);
    }

    [Fact]
    public async Task Release_with_a_foreign_token_is_404_and_keeps_the_lock()
    {
        var key = Keys.Unique(nameof(Release_with_a_foreign_token_is_404_and_keeps_the_lock));
        var lease = await Client.AcquireOkAsync(key);

        var reply = await Client.ReleaseAsync(key, new string('0', 32));

        reply.AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, lease.Token)).Status);
    }

    [Fact]
    public async Task Extend_sets_the_new_ttl_and_keeps_token_and_fencing_token()
    {
        var key = Keys.Unique(nameof(Extend_sets_the_new_ttl_and_keeps_token_and_fencing_token));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=2000");

        var reply = await Client.ExtendAsync(key, lease.Token, "ttlMs=60000");

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(lease.Token, reply.Lease.Token);
        Assert.Equal(lease.FencingToken, reply.Lease.FencingToken);
        Assert.Equal(60_000, reply.Lease.TtlMs);
        Assert.InRange((await Client.InspectAsync(key)).Json.GetProperty("ttlMs").GetInt64(), 2001, 60_000);
    }

    [Fact]
    public async Task Extend_with_a_json_body_and_without_ttl_uses_the_acquired_ttl()
    {
        var key = Keys.Unique(nameof(Extend_with_a_json_body_and_without_ttl_uses_the_acquired_ttl));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=4000");
        await Client.SendAsync(HttpMethod.Patch, $"/locks/{key}/{lease.Token}", """{"ttlMs":50000}""");

        var reply = await Client.ExtendAsync(key, lease.Token);

        Assert.Equal(4000, reply.Lease.TtlMs);
    }

    [Fact]
    public async Task Extend_with_a_foreign_token_is_404_and_does_not_touch_the_lock()
    {
        var key = Keys.Unique(nameof(Extend_with_a_foreign_token_is_404_and_does_not_touch_the_lock));
        await Client.AcquireOkAsync(key, "ttlMs=3000");

        var reply = await Client.ExtendAsync(key, new string('a', 32), "ttlMs=60000");

        reply.AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.InRange((await Client.InspectAsync(key)).Json.GetProperty("ttlMs").GetInt64(), 1, 3000);
    }

    [Fact]
    public async Task Extend_after_expiry_is_404_and_the_lock_stays_free()
    {
        var key = Keys.Unique(nameof(Extend_after_expiry_is_404_and_the_lock_stays_free));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=20");
        await RedisServer.WaitUntilAsync(async () => (await Client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "expiry");

        (await Client.ExtendAsync(key, lease.Token, "ttlMs=60000")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await Client.InspectAsync(key)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [Fact]
    public async Task Inspect_shows_holder_without_the_token()
    {
        var key = Keys.Unique(nameof(Inspect_shows_holder_without_the_token));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=9000&owner=deploy-bot");

        var inspect = await Client.InspectAsync(key);
        var check = await Client.CheckAsync(key, lease.Token);

        foreach (var reply in new[] { inspect, check })
        {
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            Assert.DoesNotContain(lease.Token, reply.Body);
            Assert.False(reply.Json.TryGetProperty("token", out _));
            Assert.Equal(key, reply.Json.GetProperty("key").GetString());
            Assert.Equal(lease.FencingToken, reply.Json.GetProperty("fencingToken").GetInt64());
            Assert.Equal("deploy-bot", reply.Json.GetProperty("owner").GetString());
            Assert.InRange(reply.Json.GetProperty("ttlMs").GetInt64(), 1, 9000);
            Assert.True(reply.Json.TryGetProperty("expiresAt", out _));
        }
    }

    [Fact]
    public async Task Check_with_a_token_that_does_not_hold_the_lock_is_404()
    {
        var key = Keys.Unique(nameof(Check_with_a_token_that_does_not_hold_the_lock_is_404));
        await Client.AcquireOkAsync(key);

        (await Client.CheckAsync(key, new string('b', 32))).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    [Fact]
    public async Task Keys_are_case_sensitive()
    {
        var key = Keys.Unique("Case");
        await Client.AcquireOkAsync(key);

        Assert.Equal(HttpStatusCode.Created, (await Client.AcquireAsync(key.ToLowerInvariant())).Status);
    }

    [Fact]
    public async Task Fencing_tokens_increase_across_release_and_expiry_through_the_api()
    {
        var key = Keys.Unique(nameof(Fencing_tokens_increase_across_release_and_expiry_through_the_api));
        var first = await Client.AcquireOkAsync(key);
        await Client.ReleaseAsync(key, first.Token);
        var second = await Client.AcquireOkAsync(key, "ttlMs=20");
        await RedisServer.WaitUntilAsync(async () => (await Client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "expiry");
        var third = await Client.AcquireOkAsync(key);

        Fences.AssertStrictlyIncreasing([first.FencingToken, second.FencingToken, third.FencingToken]);
    }

    [Fact]
    public async Task Unknown_route_is_404_not_found_problem()
    {
        (await Client.SendAsync(HttpMethod.Get, "/nothing-here")).AssertProblem(HttpStatusCode.NotFound, "not_found");
    }

    [Theory]
    [InlineData("PUT", "/locks/k")]
    [InlineData("DELETE", "/locks/k")]
    [InlineData("PATCH", "/locks/k")]
    [InlineData("PUT", "/locks/k/0123456789abcdef0123456789abcdef")]
    public async Task Other_methods_on_lock_routes_are_405_problem(string method, string path)
    {
        var reply = await Client.SendAsync(new HttpMethod(method), path);

        reply.AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
    }

    [Fact]
    public async Task Health_endpoints_answer_200_while_redis_answers()
    {
        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(HttpMethod.Get, "/health/live")).Status);
        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(HttpMethod.Get, "/health/ready")).Status);
    }
}
