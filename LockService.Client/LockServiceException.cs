using System.Net;

namespace LockService.Client;

/// <summary>
/// An error answer of the service (RFC 9457 problem details) or no answer at all. Expected outcomes (held, not held)
/// are return values, never this; see the subclasses for the statuses a caller may want to treat apart.
/// </summary>
public class LockServiceException : Exception
{
    /// <summary>Creates the exception for a problem answer.</summary>
    public LockServiceException(HttpStatusCode? status, string? code, string message, Exception? inner = null)
        : base(message, inner)
    {
        Status = status;
        Code = code;
    }

    /// <summary>The HTTP status, or null when the service was not reached.</summary>
    public HttpStatusCode? Status { get; }

    /// <summary>The problem's stable <c>code</c> (<c>invalid_parameter</c>, <c>unauthorized</c>, ...), when it had one.</summary>
    public string? Code { get; }

    /// <summary>The problem's <c>errors</c> member (400 <c>invalid_parameter</c>): messages keyed by parameter name.</summary>
    public IReadOnlyDictionary<string, string[]> Errors { get; init; } = new Dictionary<string, string[]>();
}

/// <summary>401 or 403: no API key, a wrong one, or a key without the role an operator endpoint needs.</summary>
public sealed class LockServiceAuthException(HttpStatusCode status, string? code, string message)
    : LockServiceException(status, code, message);

/// <summary>429: the tenant's rate limit, or too many requests waiting or watching on the instance.</summary>
public sealed class LockServiceThrottledException(string? code, string message, TimeSpan? retryAfter)
    : LockServiceException(HttpStatusCode.TooManyRequests, code, message)
{
    /// <summary>When to try again, from <c>Retry-After</c>.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>503 (Redis unavailable), or the service could not be reached at all (<see cref="LockServiceException.Status"/> null).</summary>
public sealed class LockServiceUnavailableException(HttpStatusCode? status, string? code, string message, TimeSpan? retryAfter, Exception? inner = null)
    : LockServiceException(status, code, message, inner)
{
    /// <summary>When to try again, from <c>Retry-After</c>, if the service said.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Thrown only by <see cref="LockClient.AcquireAsync"/>, the method that must return a held lock: the lock is held by
/// someone else and the wait ran out. <see cref="LockClient.TryAcquireAsync"/> returns this outcome instead.
/// </summary>
public sealed class LockHeldException(string key, TimeSpan? retryAfter)
    : LockServiceException(HttpStatusCode.Conflict, "lock_held", $"Lock '{key}' is held by someone else.")
{
    /// <summary>The lock's name.</summary>
    public string Key { get; } = key;

    /// <summary>The holder's remaining TTL, from <c>retryAfterMs</c>.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Thrown only by <see cref="LockClient.AcquirePermitAsync"/>: <see cref="Limit"/> permits of the semaphore are held
/// and the wait ran out. <see cref="LockClient.TryAcquirePermitAsync"/> returns this outcome instead.
/// </summary>
public sealed class PermitsHeldException(string key, int limit, TimeSpan? retryAfter)
    : LockServiceException(HttpStatusCode.Conflict, "semaphore_full", $"Semaphore '{key}' has {limit} permits held (its limit).")
{
    /// <summary>The semaphore's name.</summary>
    public string Key { get; } = key;

    /// <summary>The limit asked for.</summary>
    public int Limit { get; } = limit;

    /// <summary>When the earliest permit expires, from <c>retryAfterMs</c>.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Thrown only by <see cref="LockClient.AcquireRwLockAsync"/>: the read/write lock is held in a way that keeps this
/// <see cref="Mode"/> out (or, for a read, a writer waits) and the wait ran out.
/// </summary>
public sealed class RwLockHeldException(string key, RwLockMode mode, TimeSpan? retryAfter)
    : LockServiceException(HttpStatusCode.Conflict, "rwlock_held", $"Read/write lock '{key}' cannot be had for {LockClient.ModeName(mode)} now.")
{
    /// <summary>The read/write lock's name.</summary>
    public string Key { get; } = key;

    /// <summary>The mode asked for.</summary>
    public RwLockMode Mode { get; } = mode;

    /// <summary>When the lease in the way expires, from <c>retryAfterMs</c>.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Thrown only by <see cref="LockClient.CampaignAsync"/>: another candidate leads and the wait ran out.
/// <see cref="LockClient.TryCampaignAsync"/> returns this outcome instead.
/// </summary>
public sealed class ElectionLedException(string name, LeaderInfo? leader, TimeSpan? retryAfter)
    : LockServiceException(HttpStatusCode.Conflict, "election_led", $"Election '{name}' is led by another candidate{(leader is null ? "" : $" (term {leader.Term})")}.")
{
    /// <summary>The election's name.</summary>
    public string Name { get; } = name;

    /// <summary>Who leads (never its token), from the problem's <c>leader</c>; its TtlMs is when its term runs out unless extended.</summary>
    public LeaderInfo? Leader { get; } = leader;

    /// <summary>When the leader's term runs out unless extended, from <c>retryAfterMs</c>.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}
