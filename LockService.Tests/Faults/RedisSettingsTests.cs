using System.Net;
using System.Text.Json;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Faults;

/// <summary>
/// The service checks Redis's own settings (eviction, persistence) against real redis-server processes started with
/// each setting. One collection: the warnings gauge is process-wide, so these tests take turns with it.
/// </summary>
[Collection(nameof(RedisSettingsTests))]
public sealed class RedisSettingsTests
{
    // Short, so a test sees a changed setting within a second instead of the production minute.
    private static readonly Dictionary<string, string?> FastChecks = new() { ["Redis:SettingsCheckMs"] = "200" };
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [RedisServerFact]
    public async Task Maxmemory_with_an_evicting_policy_keeps_the_service_not_ready_at_start_with_the_reason_until_fixed()
    {
        await using var redis = await RedisServer.StartNewAsync("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru");
        await using var factory = new LockServiceFactory(redis.ConnectionString, FastChecks);
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("Unhealthy", body.GetProperty("status").GetString());
        Assert.Equal("answers", body.GetProperty("redis").GetString());
        var reason = body.GetProperty("reason").GetString()!;
        Assert.Contains("can evict lock keys", reason);
        Assert.Contains("allkeys-lru", reason);
        Assert.Contains("Redis:AcceptEvictionRisk", reason);
        Assert.Contains(RedisSettingsCheck.EvictionRisk, Checks(body));
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(HttpMethod.Get, "/health/live")).Status);
        Assert.Contains(factory.Log.Lines, l => l.Contains("RedisEvictionRiskNotReady", StringComparison.Ordinal) && l.Contains("\"@l\":\"Error\"", StringComparison.Ordinal));

        // Fixed in Redis, the instance becomes ready at the next check without a restart.
        await ConfigSetAsync(redis, "maxmemory-policy", "noeviction");
        await RedisServer.WaitUntilAsync(async () => (await ReadyAsync(client)).Status == HttpStatusCode.OK, Deadline, "ready after the policy became noeviction");
        Assert.DoesNotContain(RedisSettingsCheck.EvictionRisk, Checks((await ReadyAsync(client)).Body));
    }

    [RedisServerFact]
    public async Task With_AcceptEvictionRisk_an_evicting_policy_is_a_warning_and_the_service_is_ready()
    {
        await using var redis = await RedisServer.StartNewAsync("--maxmemory", "100mb", "--maxmemory-policy", "volatile-ttl");
        await using var factory = new LockServiceFactory(redis.ConnectionString, new Dictionary<string, string?> { ["Redis:AcceptEvictionRisk"] = "true" });
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", body.GetProperty("status").GetString());
        Assert.False(body.TryGetProperty("reason", out _));
        Assert.True(body.GetProperty("acceptEvictionRisk").GetBoolean());
        var warning = Assert.Single(Warnings(body), w => w.GetProperty("check").GetString() == RedisSettingsCheck.EvictionRisk);
        Assert.Contains("volatile-ttl", warning.GetProperty("message").GetString());
        Assert.Equal(redis.ConnectionString, warning.GetProperty("node").GetString());
        Assert.Contains(factory.Log.Lines, l => l.Contains("RedisEvictionRiskAccepted", StringComparison.Ordinal) && l.Contains("\"@l\":\"Warning\"", StringComparison.Ordinal));
        await client.AcquireOkAsync(Keys.Unique(nameof(With_AcceptEvictionRisk_an_evicting_policy_is_a_warning_and_the_service_is_ready)));
    }

    [RedisServerFact]
    public async Task No_persistence_is_a_warning_and_the_service_is_ready()
    {
        await using var redis = await RedisServer.StartNewAsync("--maxmemory-policy", "noeviction", "--save", "", "--appendonly", "no");
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([RedisSettingsCheck.NoPersistence], Checks(body));
        Assert.Contains("restart forgets every lock", Warnings(body)[0].GetProperty("message").GetString());
        Assert.Contains(factory.Log.Lines, l => l.Contains("RedisSettingsWarning", StringComparison.Ordinal) && l.Contains(RedisSettingsCheck.NoPersistence, StringComparison.Ordinal));
    }

    [RedisServerFact]
    public async Task A_redis_with_AOF_and_noeviction_is_ready_without_warnings()
    {
        await using var redis = await RedisServer.StartNewAsync("--appendonly", "yes", "--maxmemory", "100mb", "--maxmemory-policy", "noeviction");
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);

        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Empty(Warnings(body));
        Assert.NotEqual(JsonValueKind.Null, body.GetProperty("settingsCheckedAt").ValueKind);
    }

    [RedisServerFact]
    public async Task The_version_of_the_redis_server_on_path_is_read_and_accepted_and_the_service_is_ready()
    {
        await using var redis = await RedisServer.StartNewAsync("--appendonly", "yes");
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());
        var options = ConfigurationOptions.Parse(redis.ConnectionString);
        options.AllowAdmin = true;
        await using var admin = await ConnectionMultiplexer.ConnectAsync(options);
        var version = (await admin.GetServer(admin.GetEndPoints()[0]).InfoAsync("server")).SelectMany(g => g).Single(p => p.Key == "redis_version").Value;

        var (status, body) = await ReadyAsync(client);

        // The redis-server the tests run on is 6.2 or later: the judge accepts its version as INFO reports it, and the
        // service, which read it itself, is ready and says nothing about it.
        Assert.Null(RedisSettings.JudgeVersion(redis.ConnectionString, version));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Empty(Warnings(body));
        Assert.DoesNotContain(factory.Log.Lines, l => l.Contains("RedisVersion", StringComparison.Ordinal));
    }

    [RedisServerFact]
    public async Task A_redis_that_refuses_CONFIG_is_a_could_not_check_warning_and_the_service_is_ready()
    {
        // What managed services do: CONFIG renamed away, so CONFIG GET is an unknown command.
        await using var redis = await RedisServer.StartNewAsync("--rename-command", "CONFIG", "");
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);

        Assert.Equal(HttpStatusCode.OK, status);
        var warning = Assert.Single(Warnings(body));
        Assert.Equal(RedisSettingsCheck.NotChecked, warning.GetProperty("check").GetString());
        Assert.Contains("refused CONFIG GET", warning.GetProperty("message").GetString());
        Assert.Contains("could not be checked", warning.GetProperty("message").GetString());
        await client.AcquireOkAsync(Keys.Unique(nameof(A_redis_that_refuses_CONFIG_is_a_could_not_check_warning_and_the_service_is_ready)));
    }

    [RedisServerFact]
    public async Task An_evicting_policy_set_at_runtime_is_a_warning_in_body_log_and_metric_and_ready_stays_200()
    {
        await using var redis = await RedisServer.StartNewAsync("--appendonly", "yes");
        await using var factory = new LockServiceFactory(redis.ConnectionString, FastChecks);
        var client = new LockClient(factory.CreateClient());
        var (status, body) = await ReadyAsync(client);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Empty(Warnings(body));

        await ConfigSetAsync(redis, "maxmemory", "100mb");
        await ConfigSetAsync(redis, "maxmemory-policy", "allkeys-lru");

        await RedisServer.WaitUntilAsync(
            async () => Checks((await ReadyAsync(client)).Body).Contains(RedisSettingsCheck.EvictionRisk), Deadline, "the eviction warning in the ready body");
        (status, body) = await ReadyAsync(client);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", body.GetProperty("status").GetString());
        Assert.Contains("allkeys-lru", Warnings(body)[0].GetProperty("message").GetString());
        await RedisServer.WaitUntilAsync(
            async () => (await client.Http.GetStringAsync("/metrics")).Contains("lockservice_redis_settings_warnings{check=\"eviction_risk\"} 1", StringComparison.Ordinal),
            Deadline,
            "the eviction warning in /metrics");

        // Logged once when it appears, not at every check: wait for two more checks, then count.
        var seen = body.GetProperty("settingsCheckedAt").GetDateTimeOffset();
        await RedisServer.WaitUntilAsync(
            async () => (await ReadyAsync(client)).Body.GetProperty("settingsCheckedAt").GetDateTimeOffset() > seen.AddMilliseconds(300), Deadline, "two more checks");
        var warnings = factory.Log.Lines.Where(l => l.Contains("RedisSettingsWarning\"", StringComparison.Ordinal) && l.Contains(RedisSettingsCheck.EvictionRisk, StringComparison.Ordinal)).ToArray();
        var line = Assert.Single(warnings);
        Assert.Contains("\"@l\":\"Warning\"", line);
        Assert.Equal(HttpStatusCode.OK, (await ReadyAsync(client)).Status);

        // Put back, the warning and the gauge go back to none.
        await ConfigSetAsync(redis, "maxmemory-policy", "noeviction");
        await RedisServer.WaitUntilAsync(async () => Warnings((await ReadyAsync(client)).Body).Length == 0, Deadline, "no warnings after noeviction");
        await RedisServer.WaitUntilAsync(
            async () => (await client.Http.GetStringAsync("/metrics")).Contains("lockservice_redis_settings_warnings{check=\"eviction_risk\"} 0", StringComparison.Ordinal),
            Deadline,
            "the eviction gauge back at 0");
    }

    [RedisServerFact]
    public async Task With_redis_down_at_start_the_check_runs_when_redis_answers_and_then_decides_readiness()
    {
        await using var redis = await RedisServer.StartNewAsync("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-random");
        await redis.StopAsync();
        await using var factory = new LockServiceFactory(redis.ConnectionString, FastChecks, waitForRedis: false);
        var client = new LockClient(factory.CreateClient());

        var (status, body) = await ReadyAsync(client);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("does not answer", body.GetProperty("redis").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("settingsCheckedAt").ValueKind);

        await redis.StartAsync();
        await RedisServer.WaitUntilAsync(
            async () => (await ReadyAsync(client)).Body.GetProperty("redis").GetString() == "answers", Deadline, "the service to reach Redis again");

        // The first check that reaches Redis is the start-up check: the eviction risk keeps the instance not ready.
        (status, body) = await ReadyAsync(client);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("allkeys-random", body.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("Redis:SettingsCheckMs", "60001")]      // the contract checks at least every minute
    [InlineData("Redis:SettingsCheckMs", "0")]
    [InlineData("Redis:AcceptEvictionRisk", "maybe")]
    public async Task An_invalid_settings_check_option_stops_the_service_at_start_naming_it(string setting, string value)
    {
        await using var service = ServiceProcess.Start(new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" }, $"--{setting}={value}");

        Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(setting, Assert.Single(service.Stderr, l => l.Length > 0));
    }

    internal static async Task<(HttpStatusCode Status, JsonElement Body)> ReadyAsync(LockClient client)
    {
        var reply = await client.SendAsync(HttpMethod.Get, "/health/ready");
        Assert.Equal("application/json", reply.MediaType);
        return (reply.Status, reply.Json);
    }

    internal static JsonElement[] Warnings(JsonElement body) => body.GetProperty("warnings").EnumerateArray().ToArray();

    internal static string[] Checks(JsonElement body) => Warnings(body).Select(w => w.GetProperty("check").GetString()!).ToArray();

    private static async Task ConfigSetAsync(RedisServer redis, string name, string value)
    {
        var options = ConfigurationOptions.Parse(redis.ConnectionString);
        options.AllowAdmin = true;
        await using var admin = await ConnectionMultiplexer.ConnectAsync(options);
        await admin.GetServer(admin.GetEndPoints()[0]).ConfigSetAsync(name, value);
    }
}

/// <summary>On a Cluster, every master's settings are checked, not only the first node's.</summary>
[Collection(nameof(RedisSettingsTests))]
public sealed class RedisSettingsClusterTests(ClusterFixture cluster) : IClassFixture<ClusterFixture>
{
    [RedisServerFact]
    public async Task On_a_cluster_an_evicting_policy_on_any_master_keeps_the_service_not_ready_and_every_master_is_listed()
    {
        var risky = cluster.Nodes[2];
        var server = cluster.Admin.GetServer(risky.ConnectionString);
        await server.ConfigSetAsync("maxmemory", "100mb");
        await server.ConfigSetAsync("maxmemory-policy", "allkeys-lfu");
        try
        {
            await using var factory = new LockServiceFactory(cluster.ConnectionString);
            var client = new LockClient(factory.CreateClient());

            var (status, body) = await RedisSettingsTests.ReadyAsync(client);

            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Contains(risky.ConnectionString, body.GetProperty("reason").GetString());
            var eviction = Assert.Single(RedisSettingsTests.Warnings(body), w => w.GetProperty("check").GetString() == RedisSettingsCheck.EvictionRisk);
            Assert.Equal(risky.ConnectionString, eviction.GetProperty("node").GetString());

            // The test nodes run without persistence: each of the three masters says so, so each was asked.
            var unpersisted = RedisSettingsTests.Warnings(body).Where(w => w.GetProperty("check").GetString() == RedisSettingsCheck.NoPersistence)
                .Select(w => w.GetProperty("node").GetString()).Order().ToArray();
            Assert.Equal(cluster.Nodes.Select(n => n.ConnectionString).Order().ToArray(), unpersisted);
        }
        finally
        {
            await server.ConfigSetAsync("maxmemory-policy", "noeviction");
        }
    }
}
