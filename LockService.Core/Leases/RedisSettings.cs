using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>The names of what a check of Redis's own settings can find; stable, used in the ready body, the log and the metric.</summary>
public static class RedisSettingsCheck
{
    /// <summary><c>maxmemory</c> above 0 with a <c>maxmemory-policy</c> that can evict lock keys.</summary>
    public const string EvictionRisk = "eviction_risk";

    /// <summary>Neither AOF (<c>appendonly yes</c>) nor RDB <c>save</c> rules: a restart forgets every lock.</summary>
    public const string NoPersistence = "no_persistence";

    /// <summary>The node refused <c>CONFIG GET</c> (or did not report a setting), so its settings could not be checked.</summary>
    public const string NotChecked = "not_checked";

    /// <summary>A Redis older than <see cref="RedisSettings.RequiredVersion"/>: the scripts use commands it does not have.</summary>
    public const string VersionTooOld = "version_too_old";

    /// <summary>Every check name, for publishing all of them (zeros included).</summary>
    public static readonly IReadOnlyList<string> All = [EvictionRisk, NoPersistence, NotChecked, VersionTooOld];
}

/// <summary>One unsafe or unknown setting on one Redis node.</summary>
/// <param name="Check">One of <see cref="RedisSettingsCheck"/>'s names.</param>
/// <param name="Node">The node's endpoint (<c>host:port</c>); no credentials.</param>
/// <param name="Message">What was found and why it matters for locks, for an operator.</param>
public sealed record RedisSettingsFinding(string Check, string Node, string Message);

/// <summary>The outcome of one check of every connected Redis master.</summary>
/// <param name="CheckedAt">When the check ran.</param>
/// <param name="NodesChecked">Masters that answered (with settings or with a refusal).</param>
/// <param name="Findings">What is unsafe or could not be checked; empty when every master is set up safely.</param>
public sealed record RedisSettingsReport(DateTimeOffset CheckedAt, int NodesChecked, IReadOnlyList<RedisSettingsFinding> Findings)
{
    /// <summary>True when at least one master can evict lock keys.</summary>
    public bool EvictionRisk => Findings.Any(f => f.Check == RedisSettingsCheck.EvictionRisk);

    /// <summary>True when at least one master is older than <see cref="RedisSettings.RequiredVersion"/>.</summary>
    public bool VersionTooOld => Findings.Any(f => f.Check == RedisSettingsCheck.VersionTooOld);
}

/// <summary>
/// Reads and judges the Redis settings that decide whether locks survive: eviction (an evicted lock key is a lock
/// granted twice) and persistence (a restarted Redis without it forgets every lock); and the version, which decides
/// whether the scripts run at all.
/// </summary>
public static class RedisSettings
{
    /// <summary>The oldest Redis the scripts run on: the acquire script's <c>SET ... GET</c> came with 6.2.</summary>
    public static readonly Version RequiredVersion = new(6, 2);

    // Long enough for any real version ("7.2.4", "255.255.255"), short enough that an odd reply cannot fill a log line.
    private const int MaxQuotedVersion = 40;

    // Asked one by one: Redis before 7 takes a single pattern per CONFIG GET, and a pattern like "maxmemory*"
    // would also fetch settings nobody asked for.
    private static readonly string[] Names = ["maxmemory", "maxmemory-policy", "appendonly", "save"];

    /// <summary>
    /// Checks every connected master (each master of a Cluster, the one master otherwise). Returns null when no master
    /// answered, so nothing was learnt and the caller keeps what it knew.
    /// </summary>
    /// <param name="multiplexer">The service's connection; its connected non-replica servers are checked.</param>
    /// <param name="timeout">Bound on one node's answers.</param>
    /// <param name="clock">The time source for <see cref="RedisSettingsReport.CheckedAt"/>.</param>
    public static async Task<RedisSettingsReport?> CheckAsync(IConnectionMultiplexer multiplexer, TimeSpan timeout, TimeProvider clock)
    {
        var masters = multiplexer.GetServers()
            .Where(s => s.IsConnected && !s.IsReplica && s.ServerType != ServerType.Sentinel)
            .ToArray();
        var nodes = await Task.WhenAll(masters.Select(s => CheckNodeAsync(s, timeout))).ConfigureAwait(false);
        var answered = nodes.Where(n => n is not null).Select(n => n!).ToArray();
        return answered.Length == 0
            ? null
            : new RedisSettingsReport(clock.GetUtcNow(), answered.Length, answered.SelectMany(n => n).ToArray());
    }

    /// <summary>
    /// Judges one node's settings as <c>CONFIG GET</c> reported them (name to value). A setting missing from
    /// <paramref name="config"/> is reported as not checked rather than guessed.
    /// </summary>
    /// <param name="node">The node's endpoint, for the findings.</param>
    /// <param name="config">Values of <c>maxmemory</c>, <c>maxmemory-policy</c>, <c>appendonly</c> and <c>save</c>.</param>
    public static IReadOnlyList<RedisSettingsFinding> Judge(string node, IReadOnlyDictionary<string, string> config)
    {
        var findings = new List<RedisSettingsFinding>();
        var missing = Names.Where(n => !config.ContainsKey(n)).ToArray();
        if (missing.Length > 0)
        {
            findings.Add(new(RedisSettingsCheck.NotChecked, node,
                $"Redis did not report {string.Join(", ", missing)}, so whether it can evict lock keys or forget them on restart is not known."));
        }

        // maxmemory 0 is "no limit": Redis never evicts, whatever the policy says. Every policy but noeviction evicts
        // when full, and volatile-* ones are no safer here because every lock key has a TTL.
        if (config.TryGetValue("maxmemory", out var maxMemoryText) && config.TryGetValue("maxmemory-policy", out var policy)
            && long.TryParse(maxMemoryText, NumberStyles.None, CultureInfo.InvariantCulture, out var maxMemory)
            && maxMemory > 0 && !string.Equals(policy, "noeviction", StringComparison.OrdinalIgnoreCase))
        {
            findings.Add(new(RedisSettingsCheck.EvictionRisk, node,
                $"maxmemory is {maxMemory} bytes with maxmemory-policy {policy}: when full, Redis evicts keys, and an evicted lock can be granted to a second holder. " +
                "Set maxmemory-policy noeviction (or maxmemory 0)."));
        }

        if (config.TryGetValue("appendonly", out var appendOnly) && config.TryGetValue("save", out var save)
            && !string.Equals(appendOnly, "yes", StringComparison.OrdinalIgnoreCase) && string.IsNullOrWhiteSpace(save))
        {
            findings.Add(new(RedisSettingsCheck.NoPersistence, node,
                "No persistence (appendonly no, no save rules): a Redis restart forgets every lock. Set appendonly yes."));
        }

        return findings;
    }

    /// <summary>
    /// Judges one node's version as <c>INFO server</c> reported it in <c>redis_version</c>. Redis-compatible servers
    /// report oddly (a suffix, extra fields, none at all), so only a version read as major.minor and below
    /// <see cref="RequiredVersion"/> is too old; one that cannot be read is reported as not checked rather than guessed.
    /// </summary>
    /// <param name="node">The node's endpoint, for the finding.</param>
    /// <param name="redisVersion">The value of <c>redis_version</c>; null when the server reported none.</param>
    /// <returns>A finding, or null when the version is new enough.</returns>
    public static RedisSettingsFinding? JudgeVersion(string node, string? redisVersion)
    {
        var quoted = Quote(redisVersion);
        if (ParseVersion(redisVersion) is not { } version)
        {
            return new(RedisSettingsCheck.NotChecked, node,
                $"Redis did not report a version the service can read (redis_version {quoted}), so whether it has the commands the lock scripts use (Redis {RequiredVersion} or later) is not known.");
        }

        return version >= RequiredVersion
            ? null
            : new(RedisSettingsCheck.VersionTooOld, node,
                $"Redis {quoted} is older than {RequiredVersion}, whose commands (SET ... GET) the lock scripts use: lock requests would fail. Upgrade Redis to {RequiredVersion} or later.");
    }

    /// <summary>
    /// The major.minor(.patch) at the start of <paramref name="text"/> ("6.2.14", "7.2.4-rc1", "v7.0"); null when it
    /// does not start with one.
    /// </summary>
    private static Version? ParseVersion(string? text)
    {
        var span = (text ?? string.Empty).AsSpan().Trim();
        if (span.StartsWith("v", StringComparison.OrdinalIgnoreCase))
        {
            span = span[1..];
        }

        var parts = new int[3];
        var count = 0;
        while (count < parts.Length)
        {
            var digits = 0;
            while (digits < span.Length && char.IsAsciiDigit(span[digits]))
            {
                digits++;
            }

            if (digits == 0 || !int.TryParse(span[..digits], NumberStyles.None, CultureInfo.InvariantCulture, out parts[count]))
            {
                break;
            }

            count++;
            span = span[digits..];
            if (!span.StartsWith(".", StringComparison.Ordinal))
            {
                break;
            }

            span = span[1..];
        }

        // A lone number ("7") is not taken for a version: too little to be sure the server meant one.
        return count >= 2 ? new Version(parts[0], parts[1], parts[2]) : null;
    }

    // The server's own text, in quotes, cut short and without control characters: it goes into a log line and a body.
    private static string Quote(string? text) => text is null
        ? "missing"
        : "'" + new string(text.Trim().Take(MaxQuotedVersion).Select(c => char.IsControl(c) ? '?' : c).ToArray()) + "'";

    /// <summary>The value of <paramref name="field"/> in an <c>INFO</c> reply's "field:value" lines; null when absent.</summary>
    private static string? InfoField(string info, string field)
    {
        foreach (var line in info.Split('\n'))
        {
            if (line.StartsWith(field, StringComparison.Ordinal) && line.Length > field.Length && line[field.Length] == ':')
            {
                return line[(field.Length + 1)..].TrimEnd('\r');
            }
        }

        return null;
    }

    /// <summary>One node's findings; null when the node did not answer at all (down, timed out, loading).</summary>
    private static async Task<IReadOnlyList<RedisSettingsFinding>?> CheckNodeAsync(IServer server, TimeSpan timeout)
    {
        var node = Describe(server.EndPoint);

        // Sent together: one round trip's wait for all the small replies.
        var settings = CheckConfigAsync(server, node, timeout);
        var version = CheckVersionAsync(server, node, timeout);
        var findings = await Task.WhenAll(settings, version).ConfigureAwait(false);
        return findings.Any(f => f is null) ? null : findings.SelectMany(f => f!).ToArray();
    }

    private static async Task<IReadOnlyList<RedisSettingsFinding>?> CheckConfigAsync(IServer server, string node, TimeSpan timeout)
    {
        try
        {
            var replies = await Task.WhenAll(Names.Select(n => server.ExecuteAsync("CONFIG", "GET", n))).WaitAsync(timeout).ConfigureAwait(false);
            var config = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var reply in replies)
            {
                // CONFIG GET answers name, value pairs; an unknown name (a Redis-compatible server) answers none.
                var pairs = (RedisResult[]?)reply ?? [];
                for (var i = 0; i + 1 < pairs.Length; i += 2)
                {
                    config[pairs[i].ToString()] = pairs[i + 1].ToString();
                }
            }

            return Judge(node, config);
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            return null;
        }
        catch (RedisServerException ex)
        {
            return [Refused(node, "CONFIG GET", ex, "whether it can evict lock keys or forget them on restart")];
        }
    }

    // Read from INFO rather than taken from the multiplexer, which assumes a default version when it could not read one.
    private static async Task<IReadOnlyList<RedisSettingsFinding>?> CheckVersionAsync(IServer server, string node, TimeSpan timeout)
    {
        try
        {
            var info = (string?)await server.ExecuteAsync("INFO", "server").WaitAsync(timeout).ConfigureAwait(false) ?? string.Empty;
            return JudgeVersion(node, InfoField(info, "redis_version")) is { } finding ? [finding] : [];
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            return null;
        }
        catch (RedisServerException ex)
        {
            return [Refused(node, "INFO", ex, "whether it has the commands the lock scripts use")];
        }
    }

    // Managed services rename or forbid admin commands (ERR unknown command, NOPERM). The first line of Redis's reply
    // names the command and the rule, never a credential.
    private static RedisSettingsFinding Refused(string node, string command, RedisServerException ex, string unknown)
    {
        var reason = ex.Message.Split('\n', 2)[0].Trim();
        return new(RedisSettingsCheck.NotChecked, node,
            $"Redis refused {command} ({reason[..Math.Min(reason.Length, 200)]}), so {unknown} could not be checked.");
    }

    private static string Describe(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port.ToString(CultureInfo.InvariantCulture)}",
        _ => endPoint.ToString() ?? "unknown",
    };
}
