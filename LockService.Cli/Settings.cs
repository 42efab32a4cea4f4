namespace LockService.Cli;

/// <summary>What every subcommand needs: where the service is and how to speak to it.</summary>
internal sealed record Connection(Uri Url, string? ApiKey);

/// <summary>The acquire options shared by <c>run</c> and <c>acquire</c>.</summary>
/// <param name="Wait">Zero: do not wait; <see cref="Timeout.InfiniteTimeSpan"/>: forever.</param>
internal sealed record AcquireSettings(string Key, TimeSpan? Ttl, TimeSpan Wait, string? Owner, TimeSpan? MaxHold, string? IdempotencyKey, int ConflictExitCode);
