using System.ComponentModel.DataAnnotations;
using LockService.Core.Leases;

namespace LockService.Core.Elections;

/// <summary>Settings of elections, bound from the <c>Elections</c> configuration section; the lease rules (TTL, wait, hold cap, fencing retention) are the locks'.</summary>
public sealed class ElectionOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Elections";

    /// <summary>Prefix of every election's Redis keys; may not contain a hash-tag brace, and must not overlap another kind's.</summary>
    [Required(ErrorMessage = "Elections:KeyPrefix must be set (it may be empty only by choice, not by accident).")]
    [RegularExpression(@"^[^{}]*$", ErrorMessage = "Elections:KeyPrefix must not contain '{{' or '}}': the braces are reserved for the election's hash tag.")]
    public string KeyPrefix { get; set; } = "elect:";

    /// <summary>
    /// How many observe streams one instance keeps open at once; more get "too many requests". A tenant gets its share of
    /// it as of every bound (<see cref="LeaseOptions.TenantShare"/>).
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Elections:MaxObservers must be a positive number.")]
    public int MaxObservers { get; set; } = 10_000;
}
