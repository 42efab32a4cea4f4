using System.ComponentModel.DataAnnotations;

namespace LockService.Core.Locks;

/// <summary>Limits and defaults of the lock engine, bound from the <c>Locks</c> configuration section.</summary>
public sealed class LockOptions : IValidatableObject
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Locks";

    /// <summary>Prefix of every Redis key the engine writes; may not contain a hash-tag brace.</summary>
    [Required(ErrorMessage = "Locks:KeyPrefix must be set (it may be empty only by choice, not by accident).")]
    [RegularExpression(@"^[^{}]*$", ErrorMessage = "Locks:KeyPrefix must not contain '{{' or '}}': the braces are reserved for the lock's hash tag.")]
    public string KeyPrefix { get; set; } = "lock:";

    /// <summary>TTL of a lock when the caller gives none.</summary>
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

    /// <summary>How many watches (<c>GET /locks/{key}/{token}?waitMs=</c>) one instance keeps open at once; more get "too many requests".</summary>
    [Range(1, int.MaxValue, ErrorMessage = "Locks:MaxWatchers must be a positive number.")]
    public int MaxWatchers { get; set; } = 10_000;

    /// <summary>Hold cap of a lock whose acquire gives none; 0 = no cap. A TTL longer than it is cut to it.</summary>
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

    /// <inheritdoc />
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultTtlMs > MaxTtlMs)
        {
            yield return new ValidationResult(
                $"Locks:DefaultTtlMs ({DefaultTtlMs}) must be between {LockRules.MinTtlMs} and Locks:MaxTtlMs ({MaxTtlMs}).",
                [nameof(DefaultTtlMs)]);
        }

        if (DefaultMaxHoldMs is > 0 and < LockRules.MinTtlMs || DefaultMaxHoldMs > MaxHoldMs)
        {
            yield return new ValidationResult(
                $"Locks:DefaultMaxHoldMs ({DefaultMaxHoldMs}) must be 0 (no cap) or between {LockRules.MinTtlMs} and Locks:MaxHoldMs ({MaxHoldMs}).",
                [nameof(DefaultMaxHoldMs)]);
        }

        if (FenceRetentionMs < MaxTtlMs)
        {
            yield return new ValidationResult(
                $"Locks:FenceRetentionMs ({FenceRetentionMs}) must be at least Locks:MaxTtlMs ({MaxTtlMs}): a lock must not outlive the memory of its fencing token.",
                [nameof(FenceRetentionMs)]);
        }
    }
}
