using LockService.Core.Locks;

namespace LockService.Tests.Core;

/// <summary>Which settings the check calls unsafe, without a Redis: the table an operator's Redis is held to.</summary>
public sealed class RedisSettingsJudgeTests
{
    [Theory]
    [InlineData("104857600", "allkeys-lru", true)]
    [InlineData("104857600", "allkeys-random", true)]
    [InlineData("104857600", "volatile-lru", true)]     // every lock key has a TTL, so volatile-* evicts them too
    [InlineData("104857600", "volatile-ttl", true)]
    [InlineData("104857600", "noeviction", false)]
    [InlineData("0", "allkeys-lru", false)]              // maxmemory 0: no limit, Redis never evicts
    public void Eviction_risk_is_maxmemory_above_0_with_any_policy_but_noeviction(string maxMemory, string policy, bool risky)
    {
        var findings = RedisSettings.Judge("redis:6379", Config(maxMemory, policy, "yes", ""));

        Assert.Equal(risky, findings.Any(f => f.Check == RedisSettingsCheck.EvictionRisk));
    }

    [Theory]
    [InlineData("no", "", true)]
    [InlineData("yes", "", false)]
    [InlineData("no", "3600 1 300 100", false)]
    public void No_persistence_is_neither_AOF_nor_save_rules(string appendOnly, string save, bool warned)
    {
        var findings = RedisSettings.Judge("redis:6379", Config("0", "noeviction", appendOnly, save));

        Assert.Equal(warned, findings.Any(f => f.Check == RedisSettingsCheck.NoPersistence));
    }

    [Fact]
    public void A_setting_the_server_does_not_report_is_not_checked_rather_than_guessed_safe()
    {
        var config = new Dictionary<string, string> { ["appendonly"] = "yes", ["save"] = "" };

        var finding = Assert.Single(RedisSettings.Judge("redis:6379", config));

        Assert.Equal(RedisSettingsCheck.NotChecked, finding.Check);
        Assert.Contains("maxmemory, maxmemory-policy", finding.Message);
    }

    private static Dictionary<string, string> Config(string maxMemory, string policy, string appendOnly, string save) => new()
    {
        ["maxmemory"] = maxMemory,
        ["maxmemory-policy"] = policy,
        ["appendonly"] = appendOnly,
        ["save"] = save,
    };
}
