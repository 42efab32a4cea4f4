using LockService.Core.Leases;
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

    [Theory]
    [InlineData("6.2.0", false)]
    [InlineData("6.2.14", false)]
    [InlineData("7.0.15", false)]
    [InlineData("7.2.4", false)]          // what Valkey reports: the Redis version it answers like
    [InlineData("255.255.255", false)]    // what some Redis-compatible servers report
    [InlineData("6.2.6-rc1", false)]
    [InlineData(" 7.4.1\r", false)]
    [InlineData("v8.0", false)]
    [InlineData("6.0.16", true)]
    [InlineData("6.0.16-custom", true)]
    [InlineData("5.0.7", true)]
    [InlineData("3.2.100", true)]         // the old Windows port
    [InlineData("2.8", true)]
    public void A_redis_below_6_2_is_too_old_for_the_scripts_and_6_2_or_later_is_not(string version, bool tooOld)
    {
        var finding = RedisSettings.JudgeVersion("redis:6379", version);

        if (tooOld)
        {
            Assert.NotNull(finding);
            Assert.Equal(RedisSettingsCheck.VersionTooOld, finding.Check);
            Assert.Equal("redis:6379", finding.Node);
            Assert.Contains($"'{version.Trim()}' is older than 6.2", finding.Message);
            Assert.Contains("SET ... GET", finding.Message);
        }
        else
        {
            Assert.Null(finding);
        }
    }

    [Theory]
    [InlineData(null, "missing")]
    [InlineData("", "''")]
    [InlineData("unknown", "'unknown'")]
    [InlineData("7", "'7'")]              // a lone number: too little to take for a version
    [InlineData("x.y.z", "'x.y.z'")]
    [InlineData("99999999999.0.0", "'99999999999.0.0'")]
    [InlineData(".6.2", "'.6.2'")]
    public void A_version_that_cannot_be_read_is_not_checked_rather_than_guessed_old_or_new(string? version, string quoted)
    {
        var finding = RedisSettings.JudgeVersion("redis:6379", version);

        Assert.NotNull(finding);
        Assert.Equal(RedisSettingsCheck.NotChecked, finding.Check);
        Assert.Contains($"redis_version {quoted}", finding.Message);
    }

    [Fact]
    public void A_reported_version_is_quoted_short_and_without_control_characters()
    {
        var finding = RedisSettings.JudgeVersion("redis:6379", "5.0.0\u001b[31m" + new string('9', 500));

        Assert.NotNull(finding);
        Assert.Equal(RedisSettingsCheck.VersionTooOld, finding.Check);
        Assert.DoesNotContain('\u001b', finding.Message);
        Assert.True(finding.Message.Length < 300, finding.Message);
    }

    private static Dictionary<string, string> Config(string maxMemory, string policy, string appendOnly, string save) => new()
    {
        ["maxmemory"] = maxMemory,
        ["maxmemory-policy"] = policy,
        ["appendonly"] = appendOnly,
        ["save"] = save,
    };
}
