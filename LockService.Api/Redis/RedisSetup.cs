using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.RwLocks;
using LockService.Core.Semaphores;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LockService.Api.Redis;

/// <summary>One multiplexer per process, tuned so that Redis trouble is a fast error and heals by itself.</summary>
internal static class RedisSetup
{
    public static IServiceCollection AddLeaseEngine(this IServiceCollection services)
    {
        services.AddOptions<RedisOptions>().BindConfiguration(RedisOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => TryParse(o.ConnectionString), "Redis:ConnectionString is not a valid StackExchange.Redis configuration string.")
            .ValidateOnStart();
        services.AddOptions<LeaseOptions>().BindConfiguration(LeaseOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton<IConnectionMultiplexer>(sp => Connect(sp.GetRequiredService<IOptions<RedisOptions>>().Value));

        // Every kind of this instance waits, watches and streams within one set of bounds (Locks:MaxWaiters, MaxWatchers,
        // MaxStreams) and one share of each per tenant (Locks:MaxWaitersPerTenant), in the one engine.
        services.AddSingleton(sp => new WaitBounds(sp.GetRequiredService<IOptions<LeaseOptions>>().Value));
        services.AddSingleton(sp => new LeaseEngine(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<LeaseOptions>>().Value,
            sp.GetRequiredService<IOptions<RedisOptions>>().Value,
            bounds: sp.GetRequiredService<WaitBounds>()));

        // Each kind: its store over the engine, and its key space, which must not overlap another's (checked at start).
        services.AddOptions<KeySpaces>().ValidateDataAnnotations().ValidateOnStart();
        services.AddLeaseKind<LeaseOptions, LockStore>("Locks:KeyPrefix", o => o.KeyPrefix, (engine, _) => new LockStore(engine));
        services.AddOptions<SemaphoreOptions>().BindConfiguration(SemaphoreOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddLeaseKind<SemaphoreOptions, SemaphoreStore>("Semaphores:KeyPrefix", o => o.KeyPrefix, (engine, o) => new SemaphoreStore(engine, o));
        services.AddOptions<RwLockOptions>().BindConfiguration(RwLockOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddLeaseKind<RwLockOptions, RwLockStore>("RwLocks:KeyPrefix", o => o.KeyPrefix, (engine, o) => new RwLockStore(engine, o));
        services.AddOptions<ElectionOptions>().BindConfiguration(ElectionOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddLeaseKind<ElectionOptions, ElectionStore>("Elections:KeyPrefix", o => o.KeyPrefix, (engine, o) => new ElectionStore(engine, o));

        // Observers of one name on this instance share one subscription and one reader, within Elections:MaxObservers.
        services.AddSingleton(sp => new ElectionObservers(
            sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<ElectionStore>(), sp.GetRequiredService<IOptions<ElectionOptions>>().Value));
        services.AddHealthChecks()
            .AddCheck<RedisHealthCheck>("redis", tags: ["ready"])
            .AddCheck<RedisSettingsHealthCheck>("redis_settings", tags: ["ready"]);

        // Connect while the host starts, not inside the first request (which would then pay for the connect).
        services.AddHostedService<RedisConnector>();

        // Redis's own settings (eviction, persistence) on a timer of their own, never on a lock request's path.
        services.AddSingleton<RedisSettingsMonitor>();
        services.AddHostedService(sp => sp.GetRequiredService<RedisSettingsMonitor>());
        return services;
    }

    /// <summary>A kind of lease: its store, made from the engine and its options, and its key prefix among the key spaces.</summary>
    private static void AddLeaseKind<TOptions, TStore>(
        this IServiceCollection services, string prefixSetting, Func<TOptions, string> prefix, Func<LeaseEngine, TOptions, TStore> store)
        where TOptions : class
        where TStore : class
    {
        services.AddOptions<KeySpaces>().Configure<IOptions<TOptions>>((spaces, o) => spaces.Add(prefixSetting, prefix(o.Value)));
        services.AddSingleton(sp => store(sp.GetRequiredService<LeaseEngine>(), sp.GetRequiredService<IOptions<TOptions>>().Value));
    }

    public static ConnectionMultiplexer Connect(RedisOptions options)
    {
        var config = ConfigurationOptions.Parse(options.ConnectionString);

        // Start even when Redis is down (readiness says so) and keep reconnecting in the background.
        config.AbortOnConnectFail = false;
        config.ConnectTimeout = options.TimeoutMs;
        config.SyncTimeout = options.TimeoutMs;
        config.AsyncTimeout = options.TimeoutMs;

        // While disconnected, fail at once (503) instead of queueing commands until they time out.
        config.BacklogPolicy = BacklogPolicy.FailFast;

        // Reconnect attempts every 500 ms, so the service heals within a second or two of Redis coming back.
        config.ReconnectRetryPolicy = new LinearRetry(500);
        config.HeartbeatInterval = TimeSpan.FromMilliseconds(Math.Min(1000, Math.Max(100, options.TimeoutMs / 2)));

        // CONFIG GET for the check of Redis's own settings (RedisSettingsMonitor), the one admin command the service
        // sends. The flag is StackExchange.Redis's client-side guard, not a permission in Redis.
        config.AllowAdmin = true;
        return ConnectionMultiplexer.Connect(config);
    }

    private static bool TryParse(string connectionString)
    {
        try
        {
            return ConfigurationOptions.Parse(connectionString).EndPoints.Count > 0;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Creates the multiplexer at start. With Redis down the service still starts and reconnects in the background.</summary>
    private sealed class RedisConnector(IServiceProvider services) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.Run(() => services.GetRequiredService<LeaseEngine>(), cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class RedisHealthCheck(LeaseEngine engine) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await engine.PingAsync();
                return HealthCheckResult.Healthy("Redis answers.");
            }
            catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
            {
                return HealthCheckResult.Unhealthy("Redis does not answer.");
            }
        }
    }

    /// <summary>Not ready only while the start-up check's eviction risk (not accepted) or too old Redis stands; every other finding is a warning in the body.</summary>
    private sealed class RedisSettingsHealthCheck(RedisSettingsMonitor monitor) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var state = await monitor.ForReadinessAsync(cancellationToken);
            return state.NotReadyReason is { } reason
                ? HealthCheckResult.Unhealthy(reason)
                : HealthCheckResult.Healthy(state.Last is null ? "Redis settings not checked yet." : "No Redis setting keeps the service from being ready.");
        }
    }
}
