using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Api;

public sealed class OperatorFixture : ApiFixture
{
    public const string BillingAdmin = "billing-admin-0123456789abcdef";
    public const string BillingClient = "billing-client-0123456789abcdef";
    public const string ShippingAdmin = "shipping-admin-0123456789abcdef";

    protected override IDictionary<string, string?> Settings => Operators.Keys();

    public LockClient As(string apiKey) => Operators.As(Factory, apiKey);
}

/// <summary>The operator endpoints with API keys: roles, listing, force-release and its audit event.</summary>
public sealed class OperatorTests(OperatorFixture fixture) : IClassFixture<OperatorFixture>
{
    private LockClient Admin => fixture.As(OperatorFixture.BillingAdmin);

    private LockClient Client => fixture.As(OperatorFixture.BillingClient);

    [Fact]
    public async Task A_client_key_gets_403_forbidden_on_every_admin_endpoint_and_changes_nothing()
    {
        var key = Keys.Unique(nameof(A_client_key_gets_403_forbidden_on_every_admin_endpoint_and_changes_nothing));
        var lease = await Client.AcquireOkAsync(key);

        var permit = await Client.AcquirePermitOkAsync(key, "limit=1");

        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, "/admin/locks"), (HttpMethod.Delete, $"/admin/locks/{key}"), (HttpMethod.Get, "/admin/stats"),
            (HttpMethod.Get, "/admin/semaphores"), (HttpMethod.Delete, $"/admin/semaphores/{key}/0"),
        })
        {
            var reply = await Client.SendAsync(method, path);
            var problem = reply.AssertProblem(HttpStatusCode.Forbidden, "forbidden");
            Assert.Contains("admin", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, lease.Token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, permit.Token)).Status);
    }

    [Fact]
    public async Task Admin_endpoints_without_a_valid_key_are_401_with_www_authenticate_before_anything_else()
    {
        foreach (var (method, path) in new[]
        {
            (HttpMethod.Get, "/admin/locks?limit=0"), (HttpMethod.Delete, "/admin/locks/%7Bbad%7D"), (HttpMethod.Get, "/admin/stats"),
            (HttpMethod.Get, "/admin/semaphores?limit=0"), (HttpMethod.Delete, "/admin/semaphores/%7Bbad%7D/x"),
        })
        {
            var reply = await fixture.Client.SendAsync(method, path);
            reply.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
            Assert.Equal("Bearer", reply.Headers.WwwAuthenticate.ToString());
        }

        // The 403 of a client key also comes before a 400.
        (await Client.SendAsync(HttpMethod.Get, "/admin/locks?limit=0")).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        (await Client.SendAsync(HttpMethod.Delete, "/admin/semaphores/%7Bbad%7D/x")).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Listing_pages_through_every_held_lock_of_the_tenant_none_twice_in_a_page_and_never_a_token()
    {
        var prefix = Keys.Unique("list") + "-";
        var names = Enumerable.Range(0, 23).Select(i => $"{prefix}{i:00}").ToArray();
        var leases = await Task.WhenAll(names.Select(n => Client.AcquireOkAsync(n, "ttlMs=60000&owner=lister")));
        var otherTenant = await fixture.As(OperatorFixture.ShippingAdmin).AcquireOkAsync(prefix + "shipping");
        var released = await Client.AcquireOkAsync(prefix + "released");
        await Client.ReleaseAsync(released.Key, released.Token);

        var pages = await Operators.ListAllAsync(Admin, prefix, limit: 5);

        var listed = pages.SelectMany(p => p).ToList();
        Assert.All(pages, page => Assert.InRange(page.Count, 0, 5));
        Assert.All(pages, page => Assert.Equal(page.Count, page.Select(l => l.GetProperty("key").GetString()).Distinct().Count()));
        Assert.Equal(names.Order(), listed.Select(l => l.GetProperty("key").GetString()!).Distinct().Order());
        foreach (var lock_ in listed)
        {
            Assert.False(lock_.TryGetProperty("token", out _));
            var lease = leases.Single(l => l.Key == lock_.GetProperty("key").GetString());
            Assert.Equal(lease.FencingToken, lock_.GetProperty("fencingToken").GetInt64());
            Assert.Equal("lister", lock_.GetProperty("owner").GetString());
            Assert.InRange(lock_.GetProperty("ttlMs").GetInt64(), 1, 60_000);
            Assert.True(lock_.GetProperty("expiresAt").GetDateTimeOffset() > lock_.GetProperty("acquiredAt").GetDateTimeOffset());
        }

        Assert.DoesNotContain(listed, l => l.GetProperty("key").GetString() == otherTenant.Key);
        Assert.All(leases, l => Assert.DoesNotContain(l.Token, string.Join(",", pages.SelectMany(p => p).Select(x => x.GetRawText()))));
    }

    [Fact]
    public async Task A_lock_held_throughout_a_listing_appears_while_others_come_and_go() =>
        await Operators.AssertListingFindsHeldLocksDuringChurnAsync(Client, Admin, Keys.Unique("churn") + "-", held: 40, limit: 3);

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=1001", "limit")]
    [InlineData("limit=ten", "limit")]
    [InlineData("limit=+5", "limit")]
    [InlineData("limit=5&limit=6", "limit")]
    [InlineData("prefix=a*", "prefix")]
    [InlineData("prefix=%7Bx", "prefix")]
    [InlineData("prefx=a", "prefx")]
    [InlineData("cursor=", "cursor")]
    [InlineData("cursor=not-a-cursor", "cursor")]
    [InlineData("cursor=bDF8QUFBQUFBQUFBQUFBQUFBQXwwfDB8", "cursor")]
    public async Task Bad_listing_parameters_are_400_naming_the_parameter(string query, string parameter)
    {
        foreach (var listing in new[] { "/admin/locks?", "/admin/semaphores?" })
        {
            var reply = await Admin.SendAsync(HttpMethod.Get, listing + query);

            var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.True(problem.GetProperty("errors").TryGetProperty(parameter, out _), reply.Body);
        }
    }

    [Fact]
    public async Task A_cursor_is_refused_for_another_prefix_and_for_another_tenant()
    {
        var prefix = Keys.Unique("cursor") + "-";
        await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Client.AcquireOkAsync($"{prefix}{i}")));
        string? cursor = null;
        for (var i = 0; i < 100 && cursor is null; i++)
        {
            // A page that ends on a node's last SCAN has no cursor; a limit of 1 with 4 locks leaves one.
            cursor = (await Admin.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}&limit=1")).Json.GetProperty("cursor").GetString();
        }

        Assert.NotNull(cursor);
        Assert.Equal(HttpStatusCode.OK, (await Admin.SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}&limit=1&cursor={cursor}")).Status);
        (await Admin.SendAsync(HttpMethod.Get, $"/admin/locks?prefix=other&limit=1&cursor={cursor}")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        (await fixture.As(OperatorFixture.ShippingAdmin).SendAsync(HttpMethod.Get, $"/admin/locks?prefix={prefix}&limit=1&cursor={cursor}"))
            .AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
    }

    [Theory]
    [InlineData("locks")]
    [InlineData("semaphores")]
    public async Task Force_release_frees_the_lock_for_a_waiter_and_the_holder_hears_forced_everywhere(string resourceName)
    {
        var resource = LeaseResource.All.Single(r => r.Name == resourceName);
        var key = Keys.Unique(nameof(Force_release_frees_the_lock_for_a_waiter_and_the_holder_hears_forced_everywhere));
        var holder = await resource.HoldAsync(Client, key, "ttlMs=60000&owner=nightly-job");
        var watch = Client.SendAsync(HttpMethod.Get, resource.Path(key, holder.Token) + "?waitMs=30000");
        var waiter = Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key, "ttlMs=60000&waitMs=30000"));
        await (resource == LeaseResource.Locks ? fixture.Factory.WaitForWaitersAsync(1) : fixture.Factory.WaitForSemaphoreWaitersAsync(1));

        // A lock by its key, a semaphore's permit by its slot (the only one, 0).
        var forced = await Admin.SendAsync(HttpMethod.Delete, resource == LeaseResource.Locks ? $"/admin/locks/{key}" : $"/admin/semaphores/{key}/0");

        Assert.Equal(HttpStatusCode.NoContent, forced.Status);
        var next = await waiter.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Created, next.Status);
        Assert.True(next.Json.GetProperty("fencingToken").GetInt64() > holder.FencingToken);
        foreach (var heard in new[]
        {
            await watch.WaitAsync(TimeSpan.FromSeconds(5)),
            await resource.CheckAsync(Client, key, holder.Token),
            await Client.SendAsync(HttpMethod.Patch, resource.Path(key, holder.Token)),
            await Client.SendAsync(HttpMethod.Delete, resource.Path(key, holder.Token)),
        })
        {
            Assert.Equal("forced", heard.AssertProblem(HttpStatusCode.NotFound, resource.NotHeldCode).GetProperty("reason").GetString());
        }

        Assert.Equal(HttpStatusCode.OK, (await resource.CheckAsync(Client, key, next.Json.GetProperty("token").GetString()!)).Status);
    }

    [Theory]
    [InlineData("locks")]
    [InlineData("semaphores")]
    public async Task A_lease_force_released_through_the_instance_is_gone_from_the_very_next_listing(string resourceName)
    {
        var resource = LeaseResource.All.Single(r => r.Name == resourceName);
        var key = Keys.Unique(nameof(A_lease_force_released_through_the_instance_is_gone_from_the_very_next_listing));
        await resource.HoldAsync(Client, key, "ttlMs=60000");
        static IEnumerable<string?> Listed(List<List<JsonElement>> pages) => pages.SelectMany(p => p).Select(l => l.GetProperty("key").GetString());

        // Listed: the instance now shares these pages for 500 ms with whoever asks for them.
        Assert.Contains(key, Listed(await Operators.ListAllAsync(Admin, key, limit: 100, resource.Name)));
        var forced = await Admin.SendAsync(HttpMethod.Delete, resource == LeaseResource.Locks ? $"/admin/locks/{key}" : $"/admin/semaphores/{key}/0");

        Assert.Equal(HttpStatusCode.NoContent, forced.Status);
        Assert.DoesNotContain(key, Listed(await Operators.ListAllAsync(Admin, key, limit: 100, resource.Name)));
    }

    [Fact]
    public async Task Force_release_of_a_free_lock_is_404_and_of_a_bad_key_400_and_another_tenants_lock_is_not_touched()
    {
        var key = Keys.Unique(nameof(Force_release_of_a_free_lock_is_404_and_of_a_bad_key_400_and_another_tenants_lock_is_not_touched));
        var shipping = await fixture.As(OperatorFixture.ShippingAdmin).AcquireOkAsync(key);

        (await Admin.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await Admin.SendAsync(HttpMethod.Delete, "/admin/locks/.dot")).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
        (await Admin.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}?dryRun=true")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        Assert.Equal(HttpStatusCode.OK, (await fixture.As(OperatorFixture.ShippingAdmin).CheckAsync(key, shipping.Token)).Status);
    }

    [Theory]
    [InlineData("locks", "ForceReleased", "lockservice_forced_releases_total")]
    [InlineData("semaphores", "PermitForceReleased", "lockservice_permit_forced_releases_total")]
    public async Task A_force_release_is_an_audit_event_at_warning_without_tokens_or_api_keys_and_is_counted(string resourceName, string eventName, string counter)
    {
        var resource = LeaseResource.All.Single(r => r.Name == resourceName);
        var key = Keys.Unique(nameof(A_force_release_is_an_audit_event_at_warning_without_tokens_or_api_keys_and_is_counted));
        // The key ends in a GUID, which the log redacts as it would a token: the event is found by its owner.
        var owner = "audit-" + Guid.NewGuid().ToString("N")[..12];
        var holder = await resource.HoldAsync(Client, key, "owner=" + owner);

        // A lock by its key, a semaphore's permit by its slot (the only one, 0).
        var forced = await Admin.SendAsync(HttpMethod.Delete, resource == LeaseResource.Locks ? $"/admin/locks/{key}" : $"/admin/semaphores/{key}/0");

        Assert.Equal(HttpStatusCode.NoContent, forced.Status);
        await Operators.AssertAuditEventAsync(fixture.Factory, eventName, owner, key, holder.FencingToken, holder.Token);
        Assert.Matches($"(?m)^{counter} [1-9]", (await fixture.Client.SendAsync(HttpMethod.Get, "/metrics")).Body);
    }

    [Fact]
    public async Task Metrics_count_force_releases_hold_durations_and_lost_leases()
    {
        var key = Keys.Unique(nameof(Metrics_count_force_releases_hold_durations_and_lost_leases));
        await Client.AcquireOkAsync(key);
        var released = await Client.AcquireOkAsync(key + "-released");
        await Client.ReleaseAsync(released.Key, released.Token);
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}")).Status);

        var metrics = (await fixture.Client.SendAsync(HttpMethod.Get, "/metrics")).Body;

        Assert.Matches(@"(?m)^lockservice_forced_releases_total [1-9]", metrics);
        Assert.Matches(@"(?m)^lockservice_hold_duration_seconds_count [2-9]|^lockservice_hold_duration_seconds_count \d\d", metrics);
        foreach (var reason in new[] { "forced", "expired", "unavailable" })
        {
            Assert.Contains($"lockservice_lost_total{{reason=\"{reason}\"}}", metrics);
        }
    }

    [Fact]
    public async Task Stats_give_this_instances_waiting_requests_and_rates()
    {
        var first = (await Admin.SendAsync(HttpMethod.Get, "/admin/stats")).Json;

        Assert.True(first.GetProperty("waitingRequests").GetInt32() >= 0);
        Assert.True(first.GetProperty("acquiresPerSecond").GetDouble() >= 0);
        Assert.True(first.GetProperty("releasesPerSecond").GetDouble() >= 0);
    }
}

/// <summary>The operator endpoints with authentication off: listing open, force-release forbidden unless allowed.</summary>
public sealed class OperatorsWithoutAuthTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task Listing_is_open_and_force_release_is_403_forbidden()
    {
        var key = Keys.Unique(nameof(Listing_is_open_and_force_release_is_403_forbidden));
        var lease = await fixture.Client.AcquireOkAsync(key);

        var pages = await Operators.ListAllAsync(fixture.Client, key, limit: 10);
        var forced = await fixture.Client.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}");

        Assert.Contains(pages.SelectMany(p => p), l => l.GetProperty("key").GetString() == key);
        Assert.Contains("Operators:AllowForceReleaseWithoutAuth", forced.AssertProblem(HttpStatusCode.Forbidden, "forbidden").GetProperty("detail").GetString(), StringComparison.Ordinal);
        (await fixture.Client.SendAsync(HttpMethod.Delete, "/admin/locks/%7Bbad%7D")).AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.CheckAsync(key, lease.Token)).Status);
    }

    [Theory]
    [InlineData("DELETE", "/locks/{key}/")]
    [InlineData("DELETE", "/locks/{key}//")]
    [InlineData("DELETE", "/locks/{key}")]
    [InlineData("DELETE", "/locks//{key}")]
    [InlineData("DELETE", "/locks/{key}/%20")]
    [InlineData("DELETE", "/locks/{key}/admin")]
    public async Task A_typo_in_a_release_never_releases(string method, string path)
    {
        var key = Keys.Unique(nameof(A_typo_in_a_release_never_releases));
        var lease = await fixture.Client.AcquireOkAsync(key);

        var reply = await fixture.Client.SendAsync(new HttpMethod(method), path.Replace("{key}", key, StringComparison.Ordinal));

        Assert.True(reply.Status is HttpStatusCode.BadRequest or HttpStatusCode.MethodNotAllowed, $"{(int)reply.Status} {reply.Body}");
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.CheckAsync(key, lease.Token)).Status);
    }

    [Fact]
    public void With_authentication_off_no_authentication_or_authorization_is_registered()
    {
        // Nothing registered means WebApplication adds no authentication or authorization middleware: no work per request.
        Assert.Null(fixture.Factory.Services.GetService<IAuthenticationSchemeProvider>());
        Assert.Null(fixture.Factory.Services.GetService<IAuthorizationHandlerProvider>());
    }
}

public sealed class ForceWithoutAuthFixture : ApiFixture
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Operators:AllowForceReleaseWithoutAuth"] = "true" };
}

public sealed class ForceWithoutAuthTests(ForceWithoutAuthFixture fixture) : IClassFixture<ForceWithoutAuthFixture>
{
    [Fact]
    public async Task With_AllowForceReleaseWithoutAuth_force_release_works_and_the_audit_event_says_no_authentication()
    {
        var key = Keys.Unique(nameof(With_AllowForceReleaseWithoutAuth_force_release_works_and_the_audit_event_says_no_authentication));
        var owner = "audit-" + Guid.NewGuid().ToString("N")[..12];
        var lease = await fixture.Client.AcquireOkAsync(key, "owner=" + owner);

        Assert.Equal(HttpStatusCode.NoContent, (await fixture.Client.SendAsync(HttpMethod.Delete, $"/admin/locks/{key}")).Status);

        Assert.Equal("forced", (await fixture.Client.CheckAsync(key, lease.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Log.Lines.Any(l => l.Contains("ForceReleased", StringComparison.Ordinal) && l.Contains(owner, StringComparison.Ordinal) && l.Contains("authentication off", StringComparison.Ordinal))), TimeSpan.FromSeconds(5), "the audit event");
    }
}

public sealed class RoleConfigurationTests
{
    [Fact]
    public async Task An_unknown_role_stops_the_service_at_start_naming_the_setting()
    {
        await using var service = ServiceProcess.Start(
            new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" },
            "--Auth:ApiKeys:0:Key=a-key-that-is-long-enough",
            "--Auth:ApiKeys:0:Tenant=billing",
            "--Auth:ApiKeys:0:Role=root");

        Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Auth:ApiKeys:0:Role", Assert.Single(service.Stderr, l => l.Length > 0));
    }
}

/// <summary>Keys, clients and paging shared by the operator tests.</summary>
public static class Operators
{
    public static Dictionary<string, string?> Keys(IDictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0:Key"] = OperatorFixture.BillingAdmin,
            ["Auth:ApiKeys:0:Tenant"] = "billing",
            ["Auth:ApiKeys:0:Role"] = "admin",
            ["Auth:ApiKeys:1:Key"] = OperatorFixture.BillingClient,
            ["Auth:ApiKeys:1:Tenant"] = "billing",
            ["Auth:ApiKeys:2:Key"] = OperatorFixture.ShippingAdmin,
            ["Auth:ApiKeys:2:Tenant"] = "shipping",
            ["Auth:ApiKeys:2:Role"] = "admin",
        };
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }

    public static LockClient As(LockServiceFactory factory, string apiKey)
    {
        var http = factory.CreateClient();
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + apiKey);
        return new LockClient(http);
    }

    /// <summary>
    /// The audit event of a force-release, found by the released holder's owner text (keys end in GUIDs, which the log
    /// redacts as it would a token): at Warning, naming the key, its fencing token, the tenant and the caller's role; the
    /// log holds neither the holder's token nor any API key.
    /// </summary>
    public static async Task AssertAuditEventAsync(LockServiceFactory factory, string eventName, string owner, string key, long fencingToken, string token)
    {
        bool IsEvent(string line) => line.Contains(eventName, StringComparison.Ordinal) && line.Contains(owner, StringComparison.Ordinal);
        await RedisServer.WaitUntilAsync(() => Task.FromResult(factory.Log.Lines.Any(IsEvent)), TimeSpan.FromSeconds(5), "the audit event");
        var line = factory.Log.Lines.Single(IsEvent);
        Assert.Contains("\"@l\":\"Warning\"", line);
        Assert.Contains(fencingToken.ToString(System.Globalization.CultureInfo.InvariantCulture), line);
        Assert.Contains(key[..20], line);
        Assert.Contains("billing", line);
        Assert.Contains("admin", line);
        var log = factory.Log.All;
        Assert.DoesNotContain(token, log);
        Assert.DoesNotContain(OperatorFixture.BillingAdmin, log);
        Assert.DoesNotContain(OperatorFixture.BillingClient, log);
    }

    /// <summary>Every page of a listing (of <c>locks</c> or <c>semaphores</c>), following the cursor to its end.</summary>
    public static async Task<List<List<JsonElement>>> ListAllAsync(LockClient client, string prefix, int limit, string resource = "locks")
    {
        var pages = new List<List<JsonElement>>();
        string? cursor = null;
        do
        {
            var query = $"/admin/{resource}?prefix={Uri.EscapeDataString(prefix)}&limit={limit}" + (cursor is null ? "" : "&cursor=" + cursor);
            var reply = await client.SendAsync(HttpMethod.Get, query);
            Assert.True(reply.Status == HttpStatusCode.OK, $"{query}: {(int)reply.Status} {reply.Body}");
            pages.Add([.. reply.Json.GetProperty(resource).EnumerateArray()]);
            cursor = reply.Json.GetProperty("cursor").GetString();
            Assert.True(pages.Count < 100_000, "the listing does not end");
        }
        while (cursor is not null);

        return pages;
    }

    /// <summary>
    /// Lists while other locks (or semaphores) of the prefix come and go (so Redis's tables grow and rehash under the SCAN),
    /// and asserts that every one held throughout appears, none twice within a page.
    /// </summary>
    public static async Task AssertListingFindsHeldLocksDuringChurnAsync(LockClient client, LockClient admin, string prefix, int held, int limit, LeaseResource? resource = null)
    {
        resource ??= LeaseResource.Locks;
        var names = Enumerable.Range(0, held).Select(i => $"{prefix}held-{i}").ToArray();
        await Task.WhenAll(names.Select(n => resource.HoldAsync(client, n, "ttlMs=60000")));
        using var stop = new CancellationTokenSource();
        var churn = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var key = $"{prefix}churn-{i}";
                var canary = await resource.HoldAsync(client, key, "ttlMs=60000");
                if (i % 2 == 0)
                {
                    await client.SendAsync(HttpMethod.Delete, resource.Path(key, canary.Token));
                }
            }
        });
        var pages = await ListAllAsync(admin, prefix, limit, resource.Name);
        await stop.CancelAsync();
        await churn;

        Assert.All(pages, page => Assert.Equal(page.Count, page.Select(l => l.GetProperty("key").GetString()).Distinct().Count()));
        var listed = pages.SelectMany(p => p).Select(l => l.GetProperty("key").GetString()).ToHashSet();
        Assert.All(names, name => Assert.Contains(name, listed));
    }
}
