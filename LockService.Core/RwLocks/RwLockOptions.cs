using System.ComponentModel.DataAnnotations;

using LockService.Core.Leases;

namespace LockService.Core.RwLocks;

/// <summary>
/// The read/write locks' own settings, bound from the <c>RwLocks</c> configuration section. Every other limit (TTL, wait,
/// hold cap, waiters, watches, re-check, fence retention) is the <see cref="LeaseOptions"/> one.
/// </summary>
public sealed class RwLockOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "RwLocks";

    /// <summary>
    /// Prefix of every Redis key of a read/write lock; may not contain a hash-tag brace. Apart from the other kinds' prefixes,
    /// so that a lock and a read/write lock of the same name never meet.
    /// </summary>
    [Required(ErrorMessage = "RwLocks:KeyPrefix must be set (it may be empty only by choice, not by accident).")]
    [RegularExpression(@"^[^{}]*$", ErrorMessage = "RwLocks:KeyPrefix must not contain '{{' or '}}': the braces are reserved for the name's hash tag.")]
    public string KeyPrefix { get; set; } = "rw:";
}
