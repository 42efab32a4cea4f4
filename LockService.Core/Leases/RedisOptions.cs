using System.ComponentModel.DataAnnotations;

namespace LockService.Core.Leases;

/// <summary>How the service reaches Redis, bound from the <c>Redis</c> configuration section.</summary>
public sealed class RedisOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Redis";

    /// <summary>A StackExchange.Redis configuration string: one node, a Cluster's nodes, or Sentinel with <c>serviceName=</c>.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "Redis:ConnectionString must not be empty.")]
    public string ConnectionString { get; set; } = "localhost:6379";

    /// <summary>Bound on one Redis call; past it the caller gets "Redis unavailable".</summary>
    [Range(10, 600_000, ErrorMessage = "Redis:TimeoutMs must be between 10 and 600000.")]
    public int TimeoutMs { get; set; } = 2_000;

    /// <summary>Replicas that must acknowledge an acquire or extend before it counts (Redis <c>WAIT</c>); 0 turns it off.</summary>
    [Range(0, 16, ErrorMessage = "Redis:ReplicaAcks must be between 0 and 16.")]
    public int ReplicaAcks { get; set; }

    /// <summary>
    /// Run on a Redis whose <c>maxmemory-policy</c> can evict lock keys (with <c>maxmemory</c> above 0): a warning
    /// instead of staying not ready at start. An evicted lock key is a lock granted twice, so this is an explicit choice.
    /// </summary>
    public bool AcceptEvictionRisk { get; set; }

    /// <summary>
    /// How often Redis's own settings (eviction, persistence) are checked again after start. At most a minute, so a
    /// changed setting or a failover to a node set up otherwise shows within a minute; short values are for tests.
    /// </summary>
    [Range(100, 60_000, ErrorMessage = "Redis:SettingsCheckMs must be between 100 and 60000.")]
    public int SettingsCheckMs { get; set; } = 60_000;
}
