using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using LockService.Api.Admin;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using StackExchange.Redis;
using Keys = LockService.Tests.Infrastructure.Keys;

namespace LockService.Tests.Api;

/// <summary>The service on a real port, with admin and client keys, for the browser.</summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public LockServiceFactory Factory { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Factory = new LockServiceFactory(Redis.ConnectionString, Operators.Keys(), kestrel: true);
        _ = Factory.BaseAddress;
    }

    public async Task DisposeAsync() => await Factory.DisposeAsync();

    public LockClient As(string apiKey)
    {
        var http = new HttpClient { BaseAddress = Factory.BaseAddress };
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + apiKey);
        return new LockClient(http);
    }
}

/// <summary>The dashboard in headless Chromium against the real service: what an operator sees and does.</summary>
public sealed class DashboardBrowserTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private LockClient Client => fixture.As(OperatorFixture.BillingClient);

    [BrowserFact]
    public async Task The_page_asks_for_a_key_then_lists_a_lock_acquired_through_the_api_within_2_s()
    {
        var key = Keys.Unique("dash-list");
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);

        var lease = await Client.AcquireOkAsync(key, "ttlMs=60000&owner=browser-test");
        var acquired = Stopwatch.StartNew();
        var row = browser.WaitFor(d => d.FindElement(By.CssSelector($"tr[data-key='{key}']")), TimeSpan.FromSeconds(10), "the lock's row");
        var shownAfter = acquired.Elapsed;

        Assert.True(shownAfter < TimeSpan.FromSeconds(2), $"the lock showed after {shownAfter.TotalMilliseconds:0} ms");
        Assert.Contains("browser-test", row.Text, StringComparison.Ordinal);
        Assert.Contains(lease.FencingToken.ToString(System.Globalization.CultureInfo.InvariantCulture), row.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(lease.Token, browser.PageSource, StringComparison.Ordinal);
    }

    [BrowserFact]
    public async Task Force_release_after_its_confirmation_frees_the_lock_and_a_waiter_gets_it()
    {
        var key = Keys.Unique("dash-force");
        var holder = await Client.AcquireOkAsync(key, "ttlMs=60000&owner=stuck-job");
        var waiter = Client.AcquireAsync(key, "ttlMs=60000&waitMs=30000");
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);
        var button = browser.WaitFor(d => d.FindElement(By.CssSelector($"tr[data-key='{key}'] button.release")), TimeSpan.FromSeconds(10), "the lock's release button");

        // Cancelled: nothing happens.
        button.Click();
        browser.WaitFor(d => d.FindElement(By.Id("confirm")).Displayed, TimeSpan.FromSeconds(5), "the confirmation");
        Assert.Contains(key, browser.FindElement(By.Id("confirm-key")).Text, StringComparison.Ordinal);
        browser.FindElement(By.Id("confirm-cancel")).Click();
        await Task.Delay(300);
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, holder.Token)).Status);
        Assert.False(waiter.IsCompleted);

        // Confirmed: released, and the waiter has it.
        PressRelease(browser, $"tr[data-key='{key}']");
        browser.FindElement(By.Id("confirm-release")).Click();

        var next = await waiter.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Created, next.Status);
        Assert.Equal("forced", (await Client.CheckAsync(key, holder.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held").GetProperty("reason").GetString());
        browser.WaitFor(d => d.FindElement(By.Id("toast")).Text.Contains("Released", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the toast");
    }

    [BrowserFact]
    public async Task A_client_key_is_refused_on_both_views_and_cannot_force_release_a_lock_or_a_permit_from_the_page()
    {
        var key = Keys.Unique("dash-client");
        var holder = await Client.AcquireOkAsync(key, "ttlMs=60000");
        var permit = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=60000");
        using var browser = Browser.Start();
        Open(browser, "/ui", OperatorFixture.BillingClient);
        WaitForForbidden(browser, "/admin/locks");

        // The semaphores view, reloaded with the key kept in the tab: its own listing is refused too.
        browser.Navigate().GoToUrl(new Uri(fixture.Factory.BaseAddress, "/ui#semaphores"));
        browser.Navigate().Refresh();
        WaitForForbidden(browser, "/admin/semaphores");

        // Nor through the page's own script with that key: the service says 403.
        Assert.Equal(403, DeleteWithThePagesKey(browser, $"/admin/locks/{key}"));
        Assert.Equal(403, DeleteWithThePagesKey(browser, $"/admin/semaphores/{key}/{permit.Slot}"));
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckAsync(key, holder.Token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, permit.Token)).Status);
    }

    [BrowserFact]
    public async Task An_api_key_typed_into_the_page_never_appears_in_a_url_or_a_log()
    {
        var key = Keys.Unique("dash-secret");
        await Client.AcquireOkAsync(key, "ttlMs=60000");
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);
        browser.WaitFor(d => d.FindElement(By.CssSelector($"tr[data-key='{key}']")), TimeSpan.FromSeconds(10), "the lock's row");
        browser.FindElement(By.Id("prefix")).SendKeys("dash-secret");
        PressRelease(browser, $"tr[data-key='{key}']");
        browser.FindElement(By.Id("confirm-release")).Click();
        browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{key}']")).Count == 0, TimeSpan.FromSeconds(10), "the row to go");

        var script = (IJavaScriptExecutor)browser;
        var urls = (IEnumerable<object>)script.ExecuteScript("return [location.href, ...performance.getEntriesByType('resource').map(e => e.name), ...performance.getEntriesByType('navigation').map(e => e.name)];")!;
        Assert.NotEmpty(urls);
        Assert.All(urls, url => Assert.DoesNotContain(OperatorFixture.BillingAdmin, (string)url, StringComparison.Ordinal));
        Assert.Equal(OperatorFixture.BillingAdmin, script.ExecuteScript("return sessionStorage.getItem('lockservice.apiKey');"));
        Assert.Equal(0L, script.ExecuteScript("return localStorage.length;"));
        Assert.Equal(string.Empty, script.ExecuteScript("return document.cookie;"));
        Assert.Equal(string.Empty, browser.FindElement(By.Id("apikey")).GetAttribute("value"));
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Log.All.Contains("/admin/locks/{key}", StringComparison.Ordinal)), TimeSpan.FromSeconds(5), "the force-release's request line");
        Assert.DoesNotContain(OperatorFixture.BillingAdmin, fixture.Factory.Log.All, StringComparison.Ordinal);
    }

    [BrowserFact]
    public async Task The_page_is_served_with_a_policy_that_allows_nothing_from_elsewhere()
    {
        using var http = new HttpClient { BaseAddress = fixture.Factory.BaseAddress };

        foreach (var path in new[] { "/ui", "/ui/app.js", "/ui/app.css" })
        {
            using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
            var body = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain("http://", body, StringComparison.Ordinal);
            Assert.DoesNotContain("https://", body, StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri("/ui/secrets.json", UriKind.Relative))).StatusCode);
    }

    [BrowserFact]
    public async Task The_semaphores_view_lists_permits_held_through_the_api_and_force_releases_one_after_its_confirmation()
    {
        var key = Keys.Unique("dash-sem");
        string[] owners = ["report-a", "report-b"];
        var permits = new List<Permit>();
        foreach (var owner in owners)
        {
            permits.Add(await Client.AcquirePermitOkAsync(key, $"limit=3&ttlMs=60000&owner={owner}"));
        }

        var (first, second) = (permits[0], permits[1]);
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);
        browser.FindElement(By.Id("tab-semaphores")).Click();
        browser.FindElement(By.Id("prefix")).SendKeys(key);

        var rows = browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{key}']")) is { Count: 2 } found ? found : null, TimeSpan.FromSeconds(10), "the semaphore's two permits")!;
        for (var i = 0; i < permits.Count; i++)
        {
            Assert.Equal(permits[i].Slot.ToString(CultureInfo.InvariantCulture), rows[i].GetAttribute("data-slot"));
            Assert.Equal(owners[i], rows[i].FindElement(By.CssSelector("td.owner")).Text);
            Assert.Equal(permits[i].FencingToken.ToString(CultureInfo.InvariantCulture), rows[i].FindElement(By.CssSelector("td.fence")).Text);
            Assert.Equal("3", rows[i].FindElement(By.CssSelector("td.limit")).Text);
            Assert.DoesNotContain(permits[i].Token, browser.PageSource, StringComparison.Ordinal);
        }
        Assert.EndsWith("#semaphores", browser.Url, StringComparison.Ordinal);

        // Confirmed: the first permit is released, the other one stays.
        PressRelease(browser, $"tr[data-key='{key}'][data-slot='{first.Slot}']");
        Assert.Contains($"slot {first.Slot} of", browser.FindElement(By.Id("confirm-title")).Text, StringComparison.Ordinal);
        Assert.Contains("report-a", browser.FindElement(By.Id("confirm-what")).Text, StringComparison.Ordinal);
        browser.FindElement(By.Id("confirm-release")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("toast")).Text.Contains($"Released {key} slot {first.Slot}", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the toast");

        Assert.Equal("forced", (await Client.CheckPermitAsync(key, first.Token)).ReasonOf());
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, second.Token)).Status);
        Assert.Equal(1, (await Client.InspectSemaphoreAsync(key)).Json.GetProperty("held").GetInt32());
        browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{key}'][data-slot='{first.Slot}']")).Count == 0, TimeSpan.FromSeconds(5), "the released permit's row to go");

        // Released by its holder while the confirmation is open: the page says it was already free (404 permit_not_held).
        PressRelease(browser, $"tr[data-key='{key}'][data-slot='{second.Slot}']");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, second.Token)).Status);
        browser.FindElement(By.Id("confirm-release")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("toast")).Text.Contains($"{key} slot {second.Slot} was already free", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the toast");
        browser.WaitFor(d => d.FindElement(By.Id("empty")) is { Displayed: true } empty && empty.Text.Contains("No semaphore with a permit held starts with this prefix", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the empty list");
    }

    [BrowserFact]
    public async Task The_read_write_lock_view_lists_each_lease_and_force_releases_one_reader_leaving_the_other()
    {
        var key = Keys.Unique("dash-rw");
        var readers = new List<JsonElement>();
        foreach (var owner in new[] { "reader-a", "reader-b" })
        {
            var reply = await Client.SendAsync(HttpMethod.Post, $"/rwlocks/{key}?mode=read&ttlMs=60000&owner={owner}");
            Assert.Equal(HttpStatusCode.Created, reply.Status);
            readers.Add(reply.Json);
        }

        string Fence(int i) => readers[i].GetProperty("fencingToken").GetInt64().ToString(CultureInfo.InvariantCulture);
        string Token(int i) => readers[i].GetProperty("token").GetString()!;
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);
        browser.FindElement(By.Id("tab-rwlocks")).Click();
        browser.FindElement(By.Id("prefix")).SendKeys(key);

        var rows = browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{key}']")) is { Count: 2 } found ? found : null, TimeSpan.FromSeconds(10), "the two read leases")!;
        Assert.All(rows, row => Assert.Equal("read", row.FindElement(By.CssSelector("td.mode")).Text));
        Assert.Equal(new[] { Fence(0), Fence(1) }.Order(), rows.Select(r => r.FindElement(By.CssSelector("td.fence")).Text).Order());
        Assert.DoesNotContain(Token(0), browser.PageSource, StringComparison.Ordinal);
        Assert.EndsWith("#rwlocks", browser.Url, StringComparison.Ordinal);

        // Confirmed: the first reader's lease (by its fencing token) is released, the other reader keeps its own.
        PressRelease(browser, $"tr[data-key='{key}'][data-fence='{Fence(0)}']");
        Assert.Contains("reader-a", browser.FindElement(By.Id("confirm-what")).Text, StringComparison.Ordinal);
        browser.FindElement(By.Id("confirm-release")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("toast")).Text.Contains($"Released {key} (read)", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the toast");
        Assert.Equal("forced", (await Client.SendAsync(HttpMethod.Get, $"/rwlocks/{key}/{Token(0)}")).RwReasonOf());
        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(HttpMethod.Get, $"/rwlocks/{key}/{Token(1)}")).Status);
        browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{key}']")).Count == 1, TimeSpan.FromSeconds(5), "the released lease's row to go");
    }

    [BrowserFact]
    public async Task The_elections_view_shows_the_leader_its_term_and_value_and_forces_it_out_after_its_confirmation()
    {
        var name = Keys.Unique("dash-elect");
        var campaign = await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=60000&value=host-7:8080");
        Assert.Equal(HttpStatusCode.Created, campaign.Status);
        var term = campaign.Json.GetProperty("term").GetInt64().ToString(CultureInfo.InvariantCulture);
        var token = campaign.Json.GetProperty("token").GetString()!;
        using var browser = Browser.Start();
        SignIn(browser, OperatorFixture.BillingAdmin);
        browser.FindElement(By.Id("tab-elections")).Click();
        browser.FindElement(By.Id("prefix")).SendKeys(name);

        var row = browser.WaitFor(d => d.FindElements(By.CssSelector($"tr[data-key='{name}']")) is { Count: 1 } found ? found[0] : null, TimeSpan.FromSeconds(10), "the election's row")!;
        Assert.Equal(term, row.FindElement(By.CssSelector("td.fence")).Text);
        Assert.Equal("host-7:8080", row.FindElement(By.CssSelector("td.owner")).Text);
        Assert.DoesNotContain(token, browser.PageSource, StringComparison.Ordinal);

        PressRelease(browser, $"tr[data-key='{name}']");
        Assert.Contains("leader", browser.FindElement(By.Id("confirm-title")).Text, StringComparison.Ordinal);
        browser.FindElement(By.Id("confirm-release")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("toast")).Text.Contains($"Released {name}", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the toast");
        Assert.Equal("forced", (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}/{token}")).AssertProblem(HttpStatusCode.NotFound, "not_leader").GetProperty("reason").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).Status);
        browser.WaitFor(d => d.FindElement(By.Id("empty")) is { Displayed: true } empty && empty.Text.Contains("No election with a leader starts with this prefix", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the empty list");
    }

    // Clicks a row's force-release button and waits for the confirmation.
    private static void PressRelease(ChromeDriver browser, string row)
    {
        browser.FindElement(By.CssSelector(row + " button.release")).Click();
        browser.WaitFor(d => d.FindElement(By.Id("confirm-release")).Displayed, TimeSpan.FromSeconds(5), "the confirmation");
    }

    // The page says its key cannot use the operator endpoints, and shows no list and no button; the refusal was the
    // listing's of the view the page shows (this page load asked for no other listing).
    private static void WaitForForbidden(ChromeDriver browser, string listing)
    {
        browser.WaitFor(d => d.FindElement(By.Id("login-why")).Text.Contains("cannot use the operator endpoints", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the forbidden message");
        Assert.False(browser.FindElement(By.Id("board")).Displayed);
        Assert.Empty(browser.FindElements(By.CssSelector("button.release")));
        var asked = ((IEnumerable<object>)((IJavaScriptExecutor)browser).ExecuteScript(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => p.startsWith('/admin/') && p !== '/admin/stats');")!).Cast<string>().ToList();
        Assert.Contains(listing, asked);
        Assert.All(asked, path => Assert.Equal(listing, path));
    }

    // The status of a DELETE sent by the page's own script with the key it holds.
    private static long DeleteWithThePagesKey(ChromeDriver browser, string path) =>
        (long)((IJavaScriptExecutor)browser).ExecuteAsyncScript(
            "const done = arguments[arguments.length - 1];" +
            "fetch(arguments[0], { method: 'DELETE', headers: { Authorization: 'Bearer ' + sessionStorage.getItem('lockservice.apiKey') } }).then(r => done(r.status));",
            path)!;

    private void SignIn(ChromeDriver browser, string apiKey)
    {
        Open(browser, "/ui", apiKey);
        browser.WaitFor(d => d.FindElement(By.Id("board")).Displayed, TimeSpan.FromSeconds(10), "the board after the key");
    }

    private void Open(ChromeDriver browser, string page, string apiKey)
    {
        browser.Navigate().GoToUrl(new Uri(fixture.Factory.BaseAddress, page));
        TypeKey(browser, apiKey);
    }

    private static void TypeKey(ChromeDriver browser, string apiKey)
    {
        var input = browser.WaitFor(d => d.FindElement(By.Id("apikey")) is { Displayed: true } e ? e : null, TimeSpan.FromSeconds(10), "the API key field");
        input!.SendKeys(apiKey);
        input.SendKeys(OpenQA.Selenium.Keys.Enter);
    }
}

/// <summary>What open dashboards cost: each page's requests, and one listing shared by all of them, on either view.</summary>
public sealed class DashboardCostTests
{
    [BrowserTheory]
    [InlineData("locks")]
    [InlineData("semaphores")]
    public async Task Three_open_pages_share_one_listing_per_refresh(string view)
    {
        var resource = LeaseResource.All.Single(r => r.Name == view);
        await using var redis = await RedisServer.StartNewAsync();
        await using var factory = new LockServiceFactory(redis.ConnectionString, kestrel: true);
        _ = factory.BaseAddress;
        using var http = new HttpClient { BaseAddress = factory.BaseAddress };
        var client = new LockClient(http);
        for (var i = 0; i < 5; i++)
        {
            await resource.HoldAsync(client, $"cost-{i}", "ttlMs=120000");
        }

        using var browser = Browser.Start();
        browser.Navigate().GoToUrl(new Uri(factory.BaseAddress, "/ui#" + view));
        for (var i = 1; i < 3; i++)
        {
            browser.SwitchTo().NewWindow(WindowType.Tab);
            browser.Navigate().GoToUrl(new Uri(factory.BaseAddress, "/ui#" + view));
        }

        // Five locks, or five semaphores of one permit each: five rows.
        browser.WaitFor(d => d.FindElements(By.CssSelector("tr[data-key]")).Count == 5, TimeSpan.FromSeconds(10), "the " + view);
        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var server = admin.GetServers()[0];
        var (scansBefore, requestsBefore) = (await ScanCallsAsync(server), ListingRequests(factory, view));
        var measured = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(6));
        var seconds = measured.Elapsed.TotalSeconds;
        var scans = (await ScanCallsAsync(server) - scansBefore) / seconds;
        var requests = (ListingRequests(factory, view) - requestsBefore) / seconds;

        // Each page lists about once a second; together they cost Redis at most two listings a second (shared for 500 ms).
        Assert.InRange(requests, 1.5, 4.5);
        Assert.InRange(scans, 0.5, 2.5);
    }

    [RedisServerTheory]
    [InlineData("locks")]
    [InlineData("semaphores")]
    public async Task Listings_of_the_same_page_asked_together_cost_redis_one_scan_pass(string view)
    {
        var resource = LeaseResource.All.Single(r => r.Name == view);
        await using var redis = await RedisServer.StartNewAsync();
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());
        for (var i = 0; i < 5; i++)
        {
            await resource.HoldAsync(client, $"shared-{i}", "ttlMs=120000");
        }

        await using var admin = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var server = admin.GetServers()[0];
        var listing = $"/admin/{view}?limit=100";

        var before = await ScanCallsAsync(server);
        var together = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => client.SendAsync(HttpMethod.Get, listing)));
        var sharedScans = await ScanCallsAsync(server) - before;

        // Once the page is no longer shared, the same listing alone: what one pass costs. The cache's clock decides when
        // that is, and a timer may fire a little before it, so a listing right after the delay can still be served from
        // the cache: asked again until it runs a pass, 10 s at most.
        await Task.Delay(ListingCache<LeasePage<LockInfo>>.SharedFor);
        var asking = Stopwatch.StartNew();
        long oneScanPass;
        Reply alone;
        while (true)
        {
            before = await ScanCallsAsync(server);
            alone = await client.SendAsync(HttpMethod.Get, listing);
            oneScanPass = await ScanCallsAsync(server) - before;
            if (oneScanPass > 0 || asking.Elapsed > TimeSpan.FromSeconds(10))
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.All(together.Append(alone), reply => Assert.Equal(5, reply.Json.GetProperty(view).GetArrayLength()));
        Assert.InRange(oneScanPass, 1, long.MaxValue);
        Assert.Equal(oneScanPass, sharedScans);
    }

    private static int ListingRequests(LockServiceFactory factory, string view) =>
        factory.Log.Lines.Count(l => l.Contains($"GET /admin/{view} ", StringComparison.Ordinal) || l.Contains($"\"Route\":\"/admin/{view}\"", StringComparison.Ordinal));

    private static async Task<long> ScanCallsAsync(IServer server)
    {
        var stats = (string)(await server.ExecuteAsync("INFO", "commandstats"))!;
        var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith("cmdstat_scan:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split("calls=")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// The dashboard under its tenant's operator rate limit, over a keyspace whose walk takes more pages than the limit lets
/// through in a second: what an operator sees.
/// </summary>
public sealed class DashboardRateLimitTests
{
    // At least 6 pages (a page reads at most 10,000 keys) against 2 requests a second.
    private const int Filler = 50_000;

    [BrowserFact]
    public async Task Under_a_rate_limit_smaller_than_a_walk_the_page_carries_its_cursor_to_every_row_and_keeps_its_rows_through_429s()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using (var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString))
        {
            var batch = connection.GetDatabase().CreateBatch();
            var writes = Enumerable.Range(0, Filler).Select(i => batch.StringSetAsync($"filler:{i}", "x")).ToList();
            batch.Execute();
            await Task.WhenAll(writes);
        }

        var settings = Operators.Keys(new Dictionary<string, string?> { ["RateLimit:PermitsPerSecond"] = "2" });
        await using var factory = new LockServiceFactory(redis.ConnectionString, settings, kestrel: true);
        var client = Operators.As(factory, OperatorFixture.BillingClient);
        string[] keys = ["rare-a", "rare-b", "rare-c"];
        foreach (var key in keys)
        {
            // The lock routes have a bucket of 2 too: an acquire refused by it did nothing, and is asked again.
            await RedisServer.WaitUntilAsync(
                async () =>
                {
                    var reply = await client.AcquireAsync(key, "ttlMs=120000");
                    Assert.True(reply.Status is HttpStatusCode.Created or HttpStatusCode.TooManyRequests, $"acquire {key}: {(int)reply.Status} {reply.Body}");
                    return reply.Status == HttpStatusCode.Created;
                },
                TimeSpan.FromSeconds(5),
                "the acquire of " + key);
        }

        using var browser = Browser.Start();
        browser.Navigate().GoToUrl(new Uri(factory.BaseAddress, "/ui"));
        var input = browser.WaitFor(d => d.FindElement(By.Id("apikey")) is { Displayed: true } e ? e : null, TimeSpan.FromSeconds(10), "the API key field")!;
        input.SendKeys(OperatorFixture.BillingAdmin + OpenQA.Selenium.Keys.Enter);
        browser.WaitFor(d => d.FindElement(By.Id("board")).Displayed, TimeSpan.FromSeconds(10), "the board after the key");
        browser.FindElement(By.Id("prefix")).SendKeys("rare-");

        // Every lock, and the count without a '+': the walk went on from its cursor past the pages each second allows.
        browser.WaitFor(
            d => d.FindElements(By.CssSelector("tr[data-key^='rare-']")).Count == keys.Length && d.FindElement(By.Id("stat-held")).Text == "3",
            TimeSpan.FromSeconds(30),
            "the three locks, listed to the end of the walk");
        Assert.False(browser.FindElement(By.Id("more")).Displayed);

        // Others of the tenant keep its operator bucket empty: the page says so, keeps its rows, and recovers after.
        var admin = Operators.As(factory, OperatorFixture.BillingAdmin);
        using var stop = new CancellationTokenSource();
        var hammer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await admin.SendAsync(HttpMethod.Get, "/admin/stats");
                await Task.Delay(20);
            }
        });
        try
        {
            browser.WaitFor(d => d.FindElement(By.Id("status")).Text.Contains("Over the operator rate limit", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the rate-limit status");
            Assert.Equal(keys.Length, browser.FindElements(By.CssSelector("tr[data-key^='rare-']")).Count);
        }
        finally
        {
            await stop.CancelAsync();
            await hammer;
        }

        browser.WaitFor(d => d.FindElement(By.Id("status")).Text.StartsWith("Updated", StringComparison.Ordinal), TimeSpan.FromSeconds(15), "the page to recover");
        Assert.Equal(keys.Length, browser.FindElements(By.CssSelector("tr[data-key^='rare-']")).Count);
    }
}
