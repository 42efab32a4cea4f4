using System.ComponentModel.DataAnnotations;

namespace LockService.Core.Leases;

/// <summary>
/// Limits and defaults of every kind of lease, bound from the <c>Locks</c> configuration section (its name since locks were
/// the only kind; every kind's TTL, wait, hold cap, waiters, watches and streams are these), and the lock kind's key prefix.
/// </summary>
public sealed class LeaseOptions : IValidatableObject
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Locks";

    /// <summary>Prefix of every Redis key of a lock; may not contain a hash-tag brace.</summary>
    [Required(ErrorMessage = "Locks:KeyPrefix must be set (it may be empty only by choice, not by accident).")]
    [RegularExpression(@"^[^{}]*$", ErrorMessage = "Locks:KeyPrefix must not contain '{{' or '}}': the braces are reserved for the lock's hash tag.")]
    public string KeyPrefix { get; set; } = "lock:";

    /// <summary>TTL of a lease when the caller gives none.</summary>
    [Range(10, long.MaxValue, ErrorMessage = "Locks:DefaultTtlMs must be at least 10.")]
    public long DefaultTtlMs { get; set; } = 30_000;

    /// <summary>Largest TTL a caller may ask for.</summary>
    [Range(10, long.MaxValue, ErrorMessage = "Locks:MaxTtlMs must be at least 10.")]
    public long MaxTtlMs { get; set; } = 86_400_000;

    /// <summary>Longest server-side wait a caller may ask for.</summary>
    [Range(1, long.MaxValue, ErrorMessage = "Locks:MaxWaitMs must be a positive number.")]
    public long MaxWaitMs { get; set; } = 60_000;

    /// <summary>How many requests one instance lets wait at once; more get "too many requests".</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Locks:MaxWaiters must be a positive number.")]
    public int MaxWaiters { get; set; } = 10_000;

    /// <summary>How many watches (<c>GET /locks/{key}/{token}?waitMs=</c>, and the other kinds' alike) one instance keeps open at once; more get "too many requests".</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Locks:MaxWatchers must be a positive number.")]
    public int MaxWatchers { get; set; } = 10_000;

    /// <summary>
    /// How many lease-holding streams (<c>Accept: text/event-stream</c> on an acquire, every kind) one instance keeps open at
    /// once; more get "too many requests" before anything is acquired.
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Locks:MaxStreams must be a positive number.")]
    public int MaxStreams { get; set; } = 10_000;

    /// <summary>
    /// How many requests one tenant may have waiting on one instance, and as many watches and streams (each within its own
    /// bound); null: half of each bound (<see cref="TenantShare"/>). Counted only with authentication on.
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Locks:MaxWaitersPerTenant must be a positive number.")]
    public int? MaxWaitersPerTenant { get; set; }

    /// <summary>Hold cap of a lease whose acquire gives none; 0 = no cap. A TTL longer than it is cut to it.</summary>
    [Range(0, long.MaxValue, ErrorMessage = "Locks:DefaultMaxHoldMs must be 0 (no cap) or a positive number.")]
    public long DefaultMaxHoldMs { get; set; }

    /// <summary>Largest hold cap a caller may ask for.</summary>
    [Range(10, long.MaxValue, ErrorMessage = "Locks:MaxHoldMs must be at least 10.")]
    public long MaxHoldMs { get; set; } = 604_800_000;

    /// <summary>
    /// How often the head of a waiting queue looks at its lock by itself. Every hand-off through the service
    /// (release, expiry, a shortened TTL) wakes waiters at once; this bounds only what the service cannot hear,
    /// such as a key deleted behind its back.
    /// </summary>
    [Range(10, 3_600_000, ErrorMessage = "Locks:RecheckMs must be between 10 and 3600000.")]
    public long RecheckMs { get; set; } = 1_000;

    /// <summary>
    /// How long a key's last fencing token is remembered after the key's last use (acquire, extend or release).
    /// At least <see cref="MaxTtlMs"/>, so that no lock outlives the memory of its fencing token.
    /// </summary>
    [Range(10, long.MaxValue, ErrorMessage = "Locks:FenceRetentionMs must be at least 10.")]
    public long FenceRetentionMs { get; set; } = 604_800_000;

    /// <summary>
    /// A tenant's share of one of the instance's bounds (<see cref="MaxWaiters"/>, <see cref="MaxWatchers"/>,
    /// <see cref="MaxStreams"/>): <see cref="MaxWaitersPerTenant"/> within the bound, or half of it (at least 1), so that
    /// by default no tenant can take more than half of an instance's places.
    /// </summary>
    public int TenantShare(int bound) => MaxWaitersPerTenant is int share ? Math.Min(share, bound) : Math.Max(1, bound / 2);

    /// <inheritdoc />
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultTtlMs > MaxTtlMs)
        {
            yield return new ValidationResult(
                $"Locks:DefaultTtlMs ({DefaultTtlMs}) must be between {LeaseRules.MinTtlMs} and Locks:MaxTtlMs ({MaxTtlMs}).",
                [nameof(DefaultTtlMs)]);
        }

        if (DefaultMaxHoldMs is > 0 and < LeaseRules.MinTtlMs || DefaultMaxHoldMs > MaxHoldMs)
        {
            yield return new ValidationResult(
                $"Locks:DefaultMaxHoldMs ({DefaultMaxHoldMs}) must be 0 (no cap) or between {LeaseRules.MinTtlMs} and Locks:MaxHoldMs ({MaxHoldMs}).",
                [nameof(DefaultMaxHoldMs)]);
        }

        if (MaxWaitersPerTenant > MaxWaiters)
        {
            yield return new ValidationResult(
                $"Locks:MaxWaitersPerTenant ({MaxWaitersPerTenant}) must be at most Locks:MaxWaiters ({MaxWaiters}): a tenant's share of an instance's waiting requests cannot exceed them all.",
                [nameof(MaxWaitersPerTenant)]);
        }

        if (FenceRetentionMs < MaxTtlMs)
        {
            yield return new ValidationResult(
                $"Locks:FenceRetentionMs ({FenceRetentionMs}) must be at least Locks:MaxTtlMs ({MaxTtlMs}): a lock must not outlive the memory of its fencing token.",
                [nameof(FenceRetentionMs)]);
        }
    }
}
