using System.ComponentModel.DataAnnotations;
using LockService.Core.Leases;

namespace LockService.Core.Semaphores;

/// <summary>
/// The semaphore engine's own settings, bound from the <c>Semaphores</c> configuration section. Every other limit
/// (TTL, wait, hold cap, waiters, watches, re-check, fence retention) is the <see cref="Leases.LeaseOptions"/> one.
/// </summary>
public sealed class SemaphoreOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Semaphores";

    /// <summary>
    /// Prefix of every Redis key of a semaphore; may not contain a hash-tag brace. Apart from the locks' prefix, so that a
    /// lock and a semaphore of the same name never meet.
    /// </summary>
    [Required(ErrorMessage = "Semaphores:KeyPrefix must be set (it may be empty only by choice, not by accident).")]
    [RegularExpression(@"^[^{}]*$", ErrorMessage = "Semaphores:KeyPrefix must not contain '{{' or '}}': the braces are reserved for the semaphore's hash tag.")]
    public string KeyPrefix { get; set; } = "sem:";

    /// <summary>The largest <c>limit</c> a caller may give (permits held at once).</summary>
    [Range(1, 1_000_000, ErrorMessage = "Semaphores:MaxLimit must be between 1 and 1000000.")]
    public int MaxLimit { get; set; } = 10_000;
}
