using LockService.Api.Redis;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LockService.Tests.Api;

/// <summary>
/// What a too old Redis does to readiness. No test can start a Redis older than 6.2 (the machine has the one
/// redis-server on PATH), so the monitor is handed the reports a check of one would give; the reading of the version
/// is held by <see cref="Core.RedisSettingsJudgeTests"/>, and the ready endpoint's use of the reason by the real-Redis
/// tests of an eviction risk, which go the same way.
/// </summary>
[Collection(nameof(Faults.RedisSettingsTests))]
public sealed class RedisSettingsMonitorTests
{
    private const string Node = "redis:6379";

    [Fact]
    public void A_too_old_redis_at_start_keeps_the_instance_not_ready_with_the_reason_until_it_is_upgraded()
    {
        using var monitor = Monitor();

        monitor.Apply(Report(RedisSettings.JudgeVersion(Node, "6.0.16")!));

        var reason = monitor.State.NotReadyReason;
        Assert.NotNull(reason);
        Assert.Contains("too old for the lock scripts", reason);
        Assert.Contains("'6.0.16' is older than 6.2", reason);
        Assert.Contains(Node, reason);

        // Still too old at the next check: still not ready. Upgraded: ready, without a restart.
        monitor.Apply(Report(RedisSettings.JudgeVersion(Node, "6.0.16")!));
        Assert.NotNull(monitor.State.NotReadyReason);
        monitor.Apply(Report());
        Assert.Null(monitor.State.NotReadyReason);
    }

    [Fact]
    public void A_too_old_redis_found_after_start_is_a_warning_and_readiness_stays()
    {
        using var monitor = Monitor();
        monitor.Apply(Report());

        var old = RedisSettings.JudgeVersion(Node, "5.0.7")!;
        monitor.Apply(Report(old));

        Assert.Null(monitor.State.NotReadyReason);
        Assert.Contains(old, monitor.State.Last!.Findings);
    }

    [Fact]
    public void A_too_old_redis_and_an_eviction_risk_at_start_are_both_named_and_each_is_fixed_on_its_own()
    {
        using var monitor = Monitor();
        var old = RedisSettings.JudgeVersion(Node, "6.0.16")!;
        var eviction = RedisSettings.Judge(Node, new Dictionary<string, string>
        {
            ["maxmemory"] = "100",
            ["maxmemory-policy"] = "allkeys-lru",
            ["appendonly"] = "yes",
            ["save"] = "",
        }).Single();

        monitor.Apply(Report(old, eviction));
        Assert.Contains("can evict lock keys", monitor.State.NotReadyReason);
        Assert.Contains("too old for the lock scripts", monitor.State.NotReadyReason);

        monitor.Apply(Report(eviction));
        Assert.DoesNotContain("too old", monitor.State.NotReadyReason);
        Assert.Contains("can evict lock keys", monitor.State.NotReadyReason);

        // The version, fixed, does not come back as blocking: found again now, after start, it is a warning.
        monitor.Apply(Report(old, eviction));
        Assert.DoesNotContain("too old", monitor.State.NotReadyReason);
        monitor.Apply(Report());
        Assert.Null(monitor.State.NotReadyReason);
    }

    private static RedisSettingsMonitor Monitor() =>
        new(new ServiceCollection().BuildServiceProvider(), Options.Create(new RedisOptions()), NullLogger<RedisSettingsMonitor>.Instance);

    private static RedisSettingsReport Report(params RedisSettingsFinding[] findings) => new(DateTimeOffset.UtcNow, 1, findings);
}
