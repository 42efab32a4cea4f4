using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Api.Semaphores;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using LockService.Tests.Api;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Semaphores;

/// <summary>The semaphore API on one Redis: the shared behaviour, and what the contract adds for HTTP clients.</summary>
public sealed class SemaphoreApiTests(ApiFixture fixture) : SemaphoreBehaviour, IClassFixture<ApiFixture>
{
    protected override LockClient Client => fixture.Client;

    protected override string RedisConnectionString => fixture.Redis.ConnectionString;

    [Theory]
    [InlineData("", null, "is required")]
    [InlineData("ttlMs=5000", null, "is required")]
    [InlineData("limit=0", null, "between 1 and 10000")]
    [InlineData("limit=10001", null, "between 1 and 10000")]
    [InlineData("limit=-3", null, "between 1 and 10000")]
    [InlineData("limit=abc", null, "whole number")]
    [InlineData("limit=2.5", null, "whole number")]
    [InlineData("limit=2&limit=3", null, "give it once")]
    [InlineData("limit=2", """{"limit":3}""", "both in the query and in the body")]
    [InlineData("", """{"limit":"3"}""", "JSON number")]
    public async Task A_missing_or_bad_limit_is_400_naming_limit_once_and_takes_no_permit(string query, string? body, string says)
    {
        var key = Keys.Unique(nameof(A_missing_or_bad_limit_is_400_naming_limit_once_and_takes_no_permit));

        var reply = await Client.SendAsync(HttpMethod.Post, $"/semaphores/{key}?{query}", body);

        var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        var messages = problem.GetProperty("errors").GetProperty("limit").EnumerateArray().Select(m => m.GetString()!).ToList();
        Assert.Contains(says, Assert.Single(messages), StringComparison.Ordinal);
        (await Client.InspectSemaphoreAsync(key)).AssertProblem(HttpStatusCode.NotFound, "semaphore_empty");
    }

    [Fact]
    public async Task The_limit_and_the_other_parameters_can_be_a_json_body()
    {
        var key = Keys.Unique(nameof(The_limit_and_the_other_parameters_can_be_a_json_body));

        var reply = await Client.SendAsync(HttpMethod.Post, $"/semaphores/{key}", """{"limit":3,"ttlMs":15000,"owner":"from-body","maxHoldMs":20000}""");

        Assert.Equal(HttpStatusCode.Created, reply.Status);
        Assert.Equal((3, 15_000L), (reply.Permit.Limit, reply.Permit.TtlMs));
        Assert.Equal(20_000, reply.Json.GetProperty("maxHoldMs").GetInt64());
        Assert.Equal("from-body", reply.Json.GetProperty("owner").GetString());
    }

    [Fact]
    public async Task A_holder_that_vanishes_frees_its_place_at_its_ttl_and_cannot_release_or_extend_after()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_holder_that_vanishes_frees_its_place_at_its_ttl_and_cannot_release_or_extend_after));
        await client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");
        var vanished = await client.AcquirePermitOkAsync(key, "limit=2&ttlMs=400");
        var started = Stopwatch.StartNew();

        var waiter = await client.AcquirePermitAsync(key, "limit=2&waitMs=20000");

        // Not before the TTL; within 5 s, while the re-check is a minute away: the expiry timer let it in.
        Assert.Equal(HttpStatusCode.Created, waiter.Status);
        Assert.InRange(started.ElapsedMilliseconds, 250, 5_000);
        Assert.Equal(vanished.Slot, waiter.Permit.Slot);
        Assert.True(waiter.Permit.FencingToken > vanished.FencingToken);
        Assert.Equal("expired", (await client.ReleasePermitAsync(key, vanished.Token)).ReasonOf());
        Assert.Equal("expired", (await client.ExtendPermitAsync(key, vanished.Token, "ttlMs=60000")).ReasonOf());
        Assert.Equal("expired", (await client.CheckPermitAsync(key, vanished.Token)).ReasonOf());
        Assert.Equal(2, (await client.InspectSemaphoreAsync(key)).Json.GetProperty("held").GetInt32());
    }

    [Fact]
    public async Task A_release_and_a_force_release_each_hand_a_place_to_a_waiter_promptly()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, LockServiceFactory.WithoutRecheck());
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_release_and_a_force_release_each_hand_a_place_to_a_waiter_promptly));
        var released = await client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");
        var forced = await client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");

        foreach (var (holder, how) in new[] { (released, "release"), (forced, "force-release") })
        {
            var waiter = client.AcquirePermitAsync(key, "limit=2&waitMs=20000");
            await service.WaitForSemaphoreWaitersAsync(1);
            var freed = Stopwatch.StartNew();
            if (how == "release")
            {
                Assert.Equal(HttpStatusCode.NoContent, (await client.ReleasePermitAsync(key, holder.Token)).Status);
            }
            else
            {
                Assert.True((await service.Semaphores().ForceReleaseAsync(LeaseName.Of(key), holder.Slot)).Released);
            }

            var reply = await waiter;

            // The re-check is a minute away and the TTLs 30 s: within 5 s, only the notice of the freed place let it in.
            Assert.Equal(HttpStatusCode.Created, reply.Status);
            Assert.True(freed.Elapsed < TimeSpan.FromSeconds(5), $"the waiter got the place {freed.ElapsedMilliseconds} ms after the {how}");
            Assert.Equal(holder.Slot, reply.Permit.Slot);
            Assert.True(reply.Permit.FencingToken > holder.FencingToken);
        }

        Assert.Equal("forced", (await client.CheckPermitAsync(key, forced.Token)).ReasonOf());
    }

    [Fact]
    public async Task Waiters_with_one_limit_get_places_in_arrival_order()
    {
        var key = Keys.Unique(nameof(Waiters_with_one_limit_get_places_in_arrival_order));
        var holders = new[] { await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000"), await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000") };
        var order = new List<int>();
        var waiters = new List<Task>();
        var baseline = fixture.Factory.Semaphores().WaitingCount;
        for (var i = 0; i < 6; i++)
        {
            var index = i;
            waiters.Add(Task.Run(async () =>
            {
                var permit = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000&waitMs=20000");
                lock (order)
                {
                    order.Add(index);
                }

                await Client.ReleasePermitAsync(key, permit.Token);
            }));
            await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Semaphores().WaitingCount >= baseline + index + 1), TimeSpan.FromSeconds(10), $"waiter {index} to queue");
        }

        // One place at a time: each waiter releases at once, so the next in line gets the place.
        await Client.ReleasePermitAsync(key, holders[0].Token);
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(Enumerable.Range(0, 6), order);
    }

    [Fact]
    public async Task A_waiter_with_a_higher_limit_is_not_held_up_by_one_ahead_whose_limit_is_reached()
    {
        var key = Keys.Unique(nameof(A_waiter_with_a_higher_limit_is_not_held_up_by_one_ahead_whose_limit_is_reached));
        await Client.AcquirePermitOkAsync(key, "limit=3&ttlMs=30000");
        await Client.AcquirePermitOkAsync(key, "limit=3&ttlMs=30000");
        var small = Client.AcquirePermitAsync(key, "limit=2&waitMs=2000");
        await fixture.Factory.WaitForSemaphoreWaitersAsync(1);

        var large = await Client.AcquirePermitAsync(key, "limit=3&waitMs=2000");

        Assert.Equal(HttpStatusCode.Created, large.Status);
        Assert.Equal(2, large.Permit.Slot);
        (await small).AssertProblem(HttpStatusCode.Conflict, "semaphore_full");
    }

    [Fact]
    public async Task An_idempotent_retry_while_held_returns_the_original_permit_and_after_release_a_new_one()
    {
        var key = Keys.Unique(nameof(An_idempotent_retry_while_held_returns_the_original_permit_and_after_release_a_new_one));
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "retry-" + Guid.NewGuid().ToString("N") };

        var first = await Client.SendAsync(HttpMethod.Post, $"/semaphores/{key}?limit=2&ttlMs=30000&owner=first", headers: headers);
        var retry = await Client.SendAsync(HttpMethod.Post, $"/semaphores/{key}?limit=5&ttlMs=5000&owner=retry", headers: headers);
        var held = (await Client.InspectSemaphoreAsync(key)).Json.GetProperty("held").GetInt32();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, first.Permit.Token)).Status);
        var afterRelease = await Client.SendAsync(HttpMethod.Post, $"/semaphores/{key}?limit=2", headers: headers);

        // The same permit as it stands now: only what remains of its TTL may have moved (ReplayTests hold it to the expiry).
        Assert.Equal(HttpStatusCode.Created, first.Status);
        Assert.Equal((first.Permit.Token, first.Permit.Slot, first.Permit.FencingToken, first.Permit.Limit), (retry.Permit.Token, retry.Permit.Slot, retry.Permit.FencingToken, retry.Permit.Limit));
        Assert.Equal(first.Json.GetProperty("owner").GetString(), retry.Json.GetProperty("owner").GetString());
        Assert.InRange(retry.Permit.TtlMs, 1, 30_000);
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.Equal(1, held);
        Assert.Equal(HttpStatusCode.Created, afterRelease.Status);
        Assert.NotEqual(first.Permit.Token, afterRelease.Permit.Token);
    }

    [Fact]
    public async Task Inspection_shows_at_most_1000_permits_says_truncated_and_never_a_token()
    {
        var key = Keys.Unique(nameof(Inspection_shows_at_most_1000_permits_says_truncated_and_never_a_token));
        var engine = fixture.Factory.Semaphores();
        var tokens = new List<string>();
        for (var i = 0; i < 1002; i++)
        {
            tokens.Add((await engine.AcquireAsync(LeaseName.Of(key), 1002, new AcquireRequest(60_000))).Lease!.Token);
        }

        var reply = await Client.InspectSemaphoreAsync(key);

        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal(1002, reply.Json.GetProperty("held").GetInt32());
        Assert.Equal(1000, reply.Json.GetProperty("permits").GetArrayLength());
        Assert.True(reply.Json.GetProperty("truncated").GetBoolean());
        Assert.DoesNotContain("token\"", reply.Body.Replace("fencingToken\"", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.All(tokens.Take(50), t => Assert.DoesNotContain(t, reply.Body, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_watch_answers_at_once_when_the_permit_is_released_and_with_the_permit_when_the_wait_runs_out()
    {
        var key = Keys.Unique(nameof(A_watch_answers_at_once_when_the_permit_is_released_and_with_the_permit_when_the_wait_runs_out));
        var permit = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=30000");

        var held = await Client.CheckPermitAsync(key, permit.Token, "waitMs=200");
        var watch = Client.CheckPermitAsync(key, permit.Token, "waitMs=20000");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Semaphores().WatchingCount > 0), TimeSpan.FromSeconds(10), "the watch");
        var released = Stopwatch.StartNew();
        await Client.ReleasePermitAsync(key, permit.Token);
        var ended = await watch;

        Assert.Equal(HttpStatusCode.OK, held.Status);
        Assert.Equal(permit.Slot, held.Json.GetProperty("slot").GetInt32());
        Assert.Equal("released", ended.ReasonOf());
        Assert.True(released.Elapsed < TimeSpan.FromSeconds(5), $"{released.ElapsedMilliseconds} ms");
        (await Client.CheckPermitAsync(key, permit.Token, "waitMs=60001")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
    }

    [Fact]
    public async Task A_stream_holds_a_permit_its_close_frees_the_place_and_a_force_release_says_lost()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        using var http = LeaseEvents.ClientFor(service.BaseAddress);
        var key = Keys.Unique(nameof(A_stream_holds_a_permit_its_close_frees_the_place_and_a_force_release_says_lost));

        await using (var stream = await LeaseEvents.OpenAsync(http, key, "limit=2&ttlMs=2000&owner=streamer", "semaphores"))
        {
            Assert.Equal(HttpStatusCode.OK, stream.Status);
            Assert.Equal("no", stream.Header("X-Accel-Buffering"));
            var acquired = await stream.NextEventAsync();
            Assert.Equal("acquired", acquired.Name);
            var permit = JsonDocument.Parse(acquired.Data).RootElement;
            Assert.Equal((0, 2), (permit.GetProperty("slot").GetInt32(), permit.GetProperty("limit").GetInt32()));

            // Renewals (every ttlMs/3) keep it past its first 2 s TTL: 2 s leaves a cold first renewal on a loaded machine 1.3 s
            // of slack, and puts a TTL expiry at least 1.3 s after the close.
            for (var i = 0; i < 4; i++)
            {
                Assert.StartsWith(": renewed", await stream.NextCommentAsync(), StringComparison.Ordinal);
            }

            Assert.Equal(HttpStatusCode.OK, (await client.CheckPermitAsync(key, permit.GetProperty("token").GetString()!)).Status);
        }

        var closed = Stopwatch.StartNew();
        await RedisServer.WaitUntilAsync(async () => (await client.InspectSemaphoreAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "the place to be free");
        Assert.True(closed.Elapsed < TimeSpan.FromMilliseconds(900), $"free {closed.ElapsedMilliseconds} ms after the close: the TTL, not the close, freed it");

        await using var forced = await LeaseEvents.OpenAsync(http, key, "limit=2&ttlMs=3000", "semaphores");
        var slot = JsonDocument.Parse((await forced.NextEventAsync()).Data).RootElement.GetProperty("slot").GetInt32();
        Assert.True((await service.Semaphores().ForceReleaseAsync(LeaseName.Of(key), slot)).Released);
        var lost = await forced.NextEventAsync();
        Assert.Equal("lost", lost.Name);
        Assert.Equal("forced", JsonDocument.Parse(lost.Data).RootElement.GetProperty("reason").GetString());
        Assert.True(await forced.EndedAsync());
    }

    [Fact]
    public async Task A_lock_and_a_semaphore_of_the_same_name_never_meet()
    {
        var key = Keys.Unique(nameof(A_lock_and_a_semaphore_of_the_same_name_never_meet));

        var lease = await Client.AcquireOkAsync(key, "ttlMs=30000");
        var permit = await Client.AcquirePermitOkAsync(key, "limit=1&ttlMs=30000");

        Assert.Equal(0, permit.Slot);
        (await Client.ReleasePermitAsync(key, lease.Token)).AssertProblem(HttpStatusCode.NotFound, "permit_not_held");
        (await Client.ReleaseAsync(key, permit.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.True(await fixture.Redis.Redis.GetDatabase().KeyExistsAsync(SemaphoreKeys.For("sem:", LeaseName.Of(key)).Semaphore));
    }

    [Fact]
    public async Task Metrics_count_semaphore_operations_under_their_own_labels()
    {
        var key = Keys.Unique(nameof(Metrics_count_semaphore_operations_under_their_own_labels));
        var permit = await Client.AcquirePermitOkAsync(key, "limit=1");
        await Client.AcquirePermitAsync(key, "limit=1");
        await Client.ReleasePermitAsync(key, permit.Token);

        var metrics = (await Client.SendAsync(HttpMethod.Get, "/metrics")).Body;

        Assert.Matches(@"(?m)^lockservice_operations_total\{kind=""semaphore"",operation=""acquire"",outcome=""acquired""\} [1-9]", metrics);
        Assert.Matches(@"(?m)^lockservice_operations_total\{kind=""semaphore"",operation=""acquire"",outcome=""full""\} [1-9]", metrics);
        Assert.Matches(@"(?m)^lockservice_operations_total\{kind=""semaphore"",operation=""release"",outcome=""released""\} [1-9]", metrics);
        Assert.Matches(@"(?m)^lockservice_permit_hold_duration_seconds_count [1-9]", metrics);
    }

    [Fact]
    public void The_permit_body_names_every_member_the_contract_lists()
    {
        var members = typeof(PermitResponse).GetProperties().Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)).Order();

        Assert.Equal(new[] { "key", "token", "slot", "fencingToken", "limit", "ttlMs", "expiresAt", "acquiredAt", "maxHoldMs", "owner" }.Order(), members);
    }
}

/// <summary>Semaphores with API keys: each tenant has its own, and a request without a key changes nothing.</summary>
public sealed class SemaphoreTenantTests(AuthFixture fixture) : IClassFixture<AuthFixture>
{
    [Fact]
    public async Task Tenants_have_separate_semaphores_and_one_cannot_touch_anothers_permit()
    {
        var key = Keys.Unique(nameof(Tenants_have_separate_semaphores_and_one_cannot_touch_anothers_permit));
        var (billing, shipping) = (fixture.As(AuthFixture.BillingKey), fixture.As(AuthFixture.ShippingKey));

        // Limit 1 each, and both get it: one name, two semaphores.
        var permits = await Task.WhenAll(new[] { billing, shipping }.Select(tenant => tenant.AcquirePermitOkAsync(key, "limit=1&ttlMs=30000")));
        var ours = permits[0];

        Assert.All(permits, p => Assert.Equal(0, p.Slot));
        Assert.Equal("unknown", (await shipping.ReleasePermitAsync(key, ours.Token)).ReasonOf());
        Assert.Equal("unknown", (await shipping.ExtendPermitAsync(key, ours.Token)).ReasonOf());
        Assert.Equal(HttpStatusCode.OK, (await billing.CheckPermitAsync(key, ours.Token)).Status);
        Assert.Equal(1, (await shipping.InspectSemaphoreAsync(key)).Json.GetProperty("held").GetInt32());
        Assert.True(await fixture.Redis.Redis.GetDatabase().KeyExistsAsync(SemaphoreKeys.For("sem:", new LeaseName("billing", key)).Semaphore));

        // Without a key: 401 (as AuthTests holds every /locks and /semaphores route to), and the permit stays.
        (await fixture.Client.ReleasePermitAsync(key, ours.Token)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal(HttpStatusCode.OK, (await billing.CheckPermitAsync(key, ours.Token)).Status);
    }
}
