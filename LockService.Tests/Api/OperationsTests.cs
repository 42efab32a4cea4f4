using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace LockService.Tests.Api;

public sealed class OperationsTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private LockClient Client => fixture.Client;

    [Fact]
    public async Task No_token_reaches_the_log_over_a_full_lock_cycle_including_failures()
    {
        var key = Keys.Unique(nameof(No_token_reaches_the_log_over_a_full_lock_cycle_including_failures));
        var lease = await Client.AcquireOkAsync(key, "ttlMs=5000");
        await Client.ExtendAsync(key, lease.Token, "ttlMs=9000");
        await Client.CheckAsync(key, lease.Token);
        await Client.InspectAsync(key);
        await Client.SendAsync(HttpMethod.Put, $"/locks/{key}/{lease.Token}");
        await Client.SendAsync(HttpMethod.Delete, $"/locks/{key}/{lease.Token}?bogus=1");
        await Client.ReleaseAsync(key, lease.Token);
        await Client.ReleaseAsync(key, lease.Token);
        var unissued = "feedfacefeedfacefeedfacefeedface";
        await Client.ReleaseAsync(key, unissued);
        await Client.SendAsync(HttpMethod.Get, $"/locks/{key}/{unissued.ToUpperInvariant()}");

        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(fixture.Factory.Log.Lines.Count(l => l.Contains("/locks/{key}/{token}", StringComparison.Ordinal)) >= 6),
            TimeSpan.FromSeconds(5),
            "request log lines");
        var log = fixture.Factory.Log.All;
        Assert.DoesNotContain(lease.Token, log, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(unissued, log, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("HTTP DELETE /locks/{key}/{token} responded 204", log);
    }

    [Fact]
    public async Task Swagger_document_describes_every_lock_endpoint_with_its_responses()
    {
        var reply = await Client.SendAsync(HttpMethod.Get, "/swagger/v1/swagger.json");
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var paths = reply.Json.GetProperty("paths");

        var expected = new (string Path, string Method, string[] Statuses)[]
        {
            ("/locks/{key}", "post", ["201", "400", "409", "413", "415", "429", "503"]),
            ("/locks/{key}/{token}", "delete", ["204", "400", "404", "429", "503"]),
            ("/locks/{key}/{token}", "patch", ["200", "400", "404", "413", "415", "429", "503"]),
            ("/locks/{key}", "get", ["200", "400", "404", "429", "503"]),
            ("/locks/{key}/{token}", "get", ["200", "400", "404", "429", "503"]),
        };
        foreach (var (path, method, statuses) in expected)
        {
            var operation = paths.GetProperty(path).GetProperty(method);
            var responses = operation.GetProperty("responses").EnumerateObject().Select(p => p.Name).ToHashSet();
            Assert.True(statuses.All(responses.Contains), $"{method} {path} documents {string.Join(",", responses)}");
            Assert.False(string.IsNullOrWhiteSpace(operation.GetProperty("summary").GetString()));
        }

        var acquire = paths.GetProperty("/locks/{key}").GetProperty("post");
        var parameters = acquire.GetProperty("parameters").EnumerateArray().Select(p => p.GetProperty("name").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "key", "ttlMs", "waitMs", "owner", "Idempotency-Key" }, parameters);
        Assert.True(acquire.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
    }

    [Fact]
    public async Task Metrics_count_operations_by_outcome_in_prometheus_format_never_by_lock_key()
    {
        var key = Keys.Unique("metrics-key");
        var lease = await Client.AcquireOkAsync(key);
        await Client.AcquireAsync(key);
        await Client.AcquireAsync(key, "waitMs=50");
        await Client.ExtendAsync(key, lease.Token);
        await Client.InspectAsync(key);
        await Client.ReleaseAsync(key, lease.Token);
        await Client.ReleaseAsync(key, lease.Token);

        using var response = await Client.Http.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        foreach (var series in new[]
                 {
                     "lockservice_operations_total{kind=\"lock\",operation=\"acquire\",outcome=\"acquired\"}",
                     "lockservice_operations_total{kind=\"lock\",operation=\"acquire\",outcome=\"held\"}",
                     "lockservice_operations_total{kind=\"lock\",operation=\"release\",outcome=\"released\"}",
                     "lockservice_operations_total{kind=\"lock\",operation=\"release\",outcome=\"not_held\"}",
                     "lockservice_operations_total{kind=\"lock\",operation=\"extend\",outcome=\"extended\"}",
                     "lockservice_operations_total{kind=\"lock\",operation=\"inspect\",outcome=\"held\"}",
                     "lockservice_request_duration_seconds_bucket{kind=\"lock\",operation=\"acquire\",le=",
                     "lockservice_wait_duration_seconds_count",
                     "# TYPE lockservice_waiting_requests gauge",
                     "# TYPE lockservice_redis_errors_total counter",
                     "http_request_duration_seconds_count{code=\"201\",method=\"POST\",controller=\"\",action=\"\",endpoint=\"/locks/{key}\"}",
                 })
        {
            Assert.Contains(series, text);
        }

        Assert.DoesNotContain(key, text);
        Assert.DoesNotContain(lease.Token, text);
    }

    [Fact]
    public async Task A_problems_traceId_finds_its_request_line_in_the_log()
    {
        var key = Keys.Unique(nameof(A_problems_traceId_finds_its_request_line_in_the_log));
        await Client.AcquireOkAsync(key);

        var traceId = (await Client.AcquireAsync(key)).AssertProblem(HttpStatusCode.Conflict, "lock_held").GetProperty("traceId").GetString()!;

        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(fixture.Factory.Log.Lines.Any(l => l.Contains(traceId, StringComparison.Ordinal))),
            TimeSpan.FromSeconds(5),
            $"a log line with {traceId}");
        var line = fixture.Factory.Log.Lines.First(l => l.Contains(traceId, StringComparison.Ordinal));
        Assert.Contains("HTTP POST /locks/{key} responded 409", line);
    }

    [Fact]
    public async Task Request_metrics_keep_a_bounded_label_set_whatever_method_a_client_sends()
    {
        var invented = "BREW" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Client.SendAsync(new HttpMethod(invented), "/locks/teapot");

        var text = (await Client.SendAsync(HttpMethod.Get, "/metrics")).Body;

        Assert.DoesNotContain(invented, text);
        Assert.Contains("method=\"OTHER\"", text);
    }

    [Fact]
    public async Task Swagger_ui_is_served()
    {
        using var response = await Client.Http.GetAsync("/swagger/index.html");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("swagger-ui", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
    }
}

public sealed class RedisDownTests : IAsyncLifetime
{
    private LockServiceFactory _factory = null!;
    private LockClient _client = null!;

    public Task InitializeAsync()
    {
        // A port nothing listens on: Redis is down from the start.
        _factory = new LockServiceFactory($"127.0.0.1:{RedisServer.FreePort()},connectTimeout=300", new Dictionary<string, string?> { ["Redis:TimeoutMs"] = "500" }, waitForRedis: false);
        _client = new LockClient(_factory.CreateClient());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task Every_lock_endpoint_answers_503_redis_unavailable_fast_with_retry_after()
    {
        const string token = "0123456789abcdef0123456789abcdef";

        // The first request of a factory starts the host and reads the OpenAPI document for the conformance check:
        // not what the bound below is about, so it goes first, untimed.
        Assert.Equal(HttpStatusCode.OK, (await _client.SendAsync(HttpMethod.Get, "/health/live")).Status);
        foreach (var (method, path) in new[]
                 {
                     (HttpMethod.Post, "/locks/down"), (HttpMethod.Post, "/locks/down?waitMs=10000"), (HttpMethod.Delete, $"/locks/down/{token}"),
                     (HttpMethod.Patch, $"/locks/down/{token}"), (HttpMethod.Get, "/locks/down"), (HttpMethod.Get, $"/locks/down/{token}"),
                 })
        {
            var watch = Stopwatch.StartNew();
            var reply = await _client.SendAsync(method, path);

            reply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
            Assert.NotNull(reply.Headers.RetryAfter);
            // Redis:TimeoutMs plus a margin for a loaded test machine; far below the 10 s a hanging wait would take.
            Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(500 + 2000), $"{method} {path} took {watch.ElapsedMilliseconds} ms");
            Assert.DoesNotContain("Exception", reply.Body);
        }

        // An outage, not a bug: each 503 is logged as a warning naming the exception's type, without the exception.
        var logged = _factory.Log.Lines.Where(l => l.Contains("\"RedisUnavailable\"", StringComparison.Ordinal)).ToArray();
        Assert.True(logged.Length >= 6, string.Join(Environment.NewLine, _factory.Log.Lines));
        Assert.All(logged, l => Assert.Contains("\"@l\":\"Warning\"", l, StringComparison.Ordinal));
        Assert.All(logged, l => Assert.DoesNotContain("\"@x\"", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Readiness_is_503_while_liveness_stays_200()
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await _client.SendAsync(HttpMethod.Get, "/health/ready")).Status);
        Assert.Equal(HttpStatusCode.OK, (await _client.SendAsync(HttpMethod.Get, "/health/live")).Status);
    }
}

/// <summary>A bad setting stops the real process at start with one line naming the setting, exit code 1.</summary>
public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("Locks:DefaultTtlMs", "5", "Locks:DefaultTtlMs")]
    [InlineData("Locks:DefaultTtlMs", "90000000", "Locks:DefaultTtlMs")]
    [InlineData("Locks:MaxTtlMs", "-1", "Locks:MaxTtlMs")]
    [InlineData("Locks:MaxTtlMs", "lots", "Locks:MaxTtlMs")]
    [InlineData("Locks:MaxWaitMs", "0", "Locks:MaxWaitMs")]
    [InlineData("Locks:MaxWaiters", "0", "Locks:MaxWaiters")]
    [InlineData("Locks:MaxStreams", "0", "Locks:MaxStreams")]
    [InlineData("Locks:MaxWaitersPerTenant", "0", "Locks:MaxWaitersPerTenant")]
    [InlineData("Locks:MaxWaitersPerTenant", "10001", "Locks:MaxWaitersPerTenant")]
    [InlineData("Locks:KeyPrefix", "lock:{x}", "Locks:KeyPrefix")]
    [InlineData("Semaphores:KeyPrefix", "sem:{x}", "Semaphores:KeyPrefix")]
    [InlineData("Semaphores:MaxLimit", "0", "Semaphores:MaxLimit")]
    [InlineData("Semaphores:MaxLimit", "lots", "Semaphores:MaxLimit")]
    [InlineData("Elections:KeyPrefix", "elect:{x}", "Elections:KeyPrefix")]
    [InlineData("Elections:MaxObservers", "0", "Elections:MaxObservers")]
    [InlineData("Redis:ConnectionString", "", "Redis:ConnectionString")]
    [InlineData("Redis:TimeoutMs", "0", "Redis:TimeoutMs")]
    [InlineData("Auth:ApiKeys:0:Key", "a-key-that-is-long-enough", "Auth:ApiKeys:0:Tenant")]
    [InlineData("RateLimit:PermitsPerSecond", "0", "RateLimit:PermitsPerSecond")]
    public async Task An_invalid_setting_stops_the_service_at_start_with_one_line_naming_it(string setting, string value, string named)
    {
        await using var service = ServiceProcess.Start(new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" }, $"--{setting}={value}");

        Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        var line = Assert.Single(service.Stderr, l => l.Length > 0);
        Assert.Contains(named, line);
        Assert.DoesNotContain("   at ", string.Join('\n', service.Stdout) + line);
    }

    [Theory]
    [InlineData("app:", "app:")]
    [InlineData("app:", "app:sem:")]
    [InlineData("s", "sem:")]
    public async Task Two_kinds_key_prefixes_that_are_equal_or_where_one_starts_with_the_other_stop_the_service_naming_both(string locks, string semaphores)
    {
        // A lock's fence string would land on a semaphore's fence hash: each kind must own its key space.
        await using var service = ServiceProcess.Start(
            new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" }, $"--Locks:KeyPrefix={locks}", $"--Semaphores:KeyPrefix={semaphores}");

        Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        var line = Assert.Single(service.Stderr, l => l.Length > 0);
        Assert.Contains("Locks:KeyPrefix", line, StringComparison.Ordinal);
        Assert.Contains("Semaphores:KeyPrefix", line, StringComparison.Ordinal);
    }

    [RedisServerFact]
    public async Task Outside_development_the_log_is_compact_json_with_one_line_per_request_and_no_token()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var port = RedisServer.FreePort();
        await using var service = ServiceProcess.Start(
            new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" },
            "--urls", $"http://127.0.0.1:{port}", "--Redis:ConnectionString", redis.ConnectionString);
        var client = new LockClient(new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") });
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                try
                {
                    return (await client.SendAsync(HttpMethod.Get, "/health/ready")).Status == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(30),
            "the service to start");

        var lease = await client.AcquireOkAsync("json-log");
        await client.ReleaseAsync("json-log", lease.Token);
        // Matched on the parsed line: "204" alone also matches a timestamp ("...01.9204504Z" of another request's line).
        await RedisServer.WaitUntilAsync(
            () => Task.FromResult(service.Stdout.Any(l => l.Contains("\"StatusCode\":204", StringComparison.Ordinal) && l.Contains("/locks/{key}/{token}", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(10),
            "the release's log line");

        var lines = service.Stdout.ToList();
        var requestLines = lines.Where(l => l.Contains("RouteTemplate", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(lines, l => JsonDocument.Parse(l));
        Assert.Contains(requestLines, e => e.GetProperty("RouteTemplate").GetString() == "/locks/{key}/{token}" && e.GetProperty("RequestMethod").GetString() == "DELETE" && e.GetProperty("StatusCode").GetInt32() == 204 && e.TryGetProperty("Elapsed", out _));
        Assert.DoesNotContain(lines, l => l.Contains(lease.Token, StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_match_the_contract()
    {
        var locks = new LockService.Core.Leases.LeaseOptions();
        var redis = new LockService.Core.Leases.RedisOptions();

        Assert.Equal(("lock:", 30_000L, 86_400_000L, 60_000L, 10_000), (locks.KeyPrefix, locks.DefaultTtlMs, locks.MaxTtlMs, locks.MaxWaitMs, locks.MaxWaiters));
        Assert.Equal((10_000, 10_000, (int?)null), (locks.MaxWatchers, locks.MaxStreams, locks.MaxWaitersPerTenant));
        Assert.Equal(5_000, locks.TenantShare(locks.MaxWaiters));   // half of each bound per tenant
        Assert.Equal(("localhost:6379", 2_000), (redis.ConnectionString, redis.TimeoutMs));
        var semaphores = new LockService.Core.Semaphores.SemaphoreOptions();
        Assert.Equal(("sem:", 10_000), (semaphores.KeyPrefix, semaphores.MaxLimit));
        Assert.True(JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "appsettings.json"))).RootElement.GetProperty("Swagger").GetProperty("Enabled").GetBoolean());
    }
}
