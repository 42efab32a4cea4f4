namespace LockService.Cli;

/// <summary>What every subcommand needs: where the service is and how to speak to it.</summary>
internal sealed record Connection(Uri Url, string? ApiKey);

/// <summary>The acquire options shared by <c>run</c> and <c>acquire</c>.</summary>
/// <param name="Limit">Null: the lock KEY; N: a permit of the counting semaphore KEY, at most N holders.</param>
/// <param name="Wait">Zero: do not wait; <see cref="Timeout.InfiniteTimeSpan"/>: forever.</param>
internal sealed record AcquireSettings(string Key, int? Limit, TimeSpan? Ttl, TimeSpan Wait, string? Owner, TimeSpan? MaxHold, string? IdempotencyKey, int ConflictExitCode)
{
    /// <summary>Why nothing was acquired: held (full) and the wait ran out.</summary>
    public string Conflict =>
        (Limit is { } limit ? $"'{Key}' has {limit} permits held (its limit)" : $"'{Key}' is held by someone else")
        + (Wait > TimeSpan.Zero ? " and the wait ran out" : "");
}

/// <summary>A lease named by KEY and TOKEN (release, extend): a lock's, or a permit's of the semaphore KEY.</summary>
internal sealed record HeldLease(string Key, string Token, bool Semaphore);
