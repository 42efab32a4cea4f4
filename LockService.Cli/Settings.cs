using LockService.Client;

namespace LockService.Cli;

/// <summary>What every subcommand needs: where the service is and how to speak to it.</summary>
internal sealed record Connection(Uri Url, string? ApiKey);

/// <summary>What <c>run</c>, <c>elect</c> and <c>acquire</c> hold: the kind of lease, with what its acquire adds.</summary>
internal abstract record Target
{
    /// <summary>The lock KEY.</summary>
    public sealed record Lock : Target;

    /// <summary>One of <paramref name="Limit"/> permits of the counting semaphore KEY.</summary>
    public sealed record Permit(int Limit) : Target;

    /// <summary>A <paramref name="Mode"/> lease of the read/write lock KEY.</summary>
    public sealed record RwLock(RwLockMode Mode) : Target;

    /// <summary>The leadership of the election KEY, campaigning with <paramref name="Value"/>.</summary>
    public sealed record Election(string? Value) : Target;
}

/// <summary>The acquire options shared by <c>run</c>, <c>elect</c> and <c>acquire</c>.</summary>
/// <param name="Wait">Zero: do not wait; <see cref="Timeout.InfiniteTimeSpan"/>: forever.</param>
internal sealed record AcquireSettings(string Key, Target Target, TimeSpan? Ttl, TimeSpan Wait, string? Owner, TimeSpan? MaxHold, string? IdempotencyKey, int ConflictExitCode)
{
    /// <summary>Why nothing was acquired: held (full, led) and the wait ran out.</summary>
    public string Conflict =>
        Target switch
        {
            Target.Permit(var limit) => $"'{Key}' has {limit} permits held (its limit)",
            Target.RwLock(var mode) => $"'{Key}' cannot be had for {(mode == RwLockMode.Write ? "write (someone holds it)" : "read (a writer holds it or waits for it)")}",
            Target.Election => $"'{Key}' is led by another candidate",
            _ => $"'{Key}' is held by someone else",
        }
        + (Wait > TimeSpan.Zero ? " and the wait ran out" : "");

    /// <summary>One acquire request of <see cref="Target"/>, waiting in the server up to <paramref name="wait"/>.</summary>
    public Task<AcquireResult> AcquireOnceAsync(LockClient client, TimeSpan wait, string idempotencyKey, CancellationToken cancellationToken) => Target switch
    {
        Target.Permit(var limit) => client.AcquirePermitOnceAsync(Key, limit, Ttl, wait, Owner, MaxHold, idempotencyKey, cancellationToken),
        Target.RwLock(var mode) => client.AcquireRwLockOnceAsync(Key, mode, Ttl, wait, Owner, MaxHold, idempotencyKey, cancellationToken),
        Target.Election(var value) => client.CampaignOnceAsync(Key, value, Ttl, wait, MaxHold, idempotencyKey, cancellationToken),
        _ => client.AcquireOnceAsync(Key, Ttl, wait, Owner, MaxHold, idempotencyKey, cancellationToken),
    };
}

/// <summary>A lease named by KEY and TOKEN (release, extend): a lock's, or a permit's of the semaphore KEY.</summary>
internal sealed record HeldLease(string Key, string Token, bool Semaphore);
