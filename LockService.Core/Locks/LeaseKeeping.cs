namespace LockService.Core.Locks;

/// <summary>
/// Keeps a lease of any kind alive for as long as its holder wants it (a stream's connection): renews it every third of its
/// TTL and watches it in between, so that a loss is known at once. Both engines keep their leases with it.
/// </summary>
internal static class LeaseKeeping
{
    // How soon a kept lease tries to renew again after Redis did not answer: often enough to catch a short outage,
    // rarely enough not to hammer a Redis that is coming back.
    private static readonly TimeSpan RenewRetry = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Returns why the lease ended (one that vanished, or whose record is gone: <see cref="LeaseEnd.Expired"/>; Redis
    /// unreachable until the last granted expiry: <see cref="LeaseEnd.Unavailable"/>), or null when <paramref name="stop"/>
    /// was cancelled first, in which case the lease is still held and the caller releases it.
    /// </summary>
    /// <param name="ttlMs">The lease's TTL as granted.</param>
    /// <param name="clock">The engine's clock.</param>
    /// <param name="watch">Waits up to the given time for the lease to end, and says whether it is still held.</param>
    /// <param name="renew">Extends the lease (and tells its holder): the TTL granted, or why it ended.</param>
    /// <param name="stop">The holder no longer wants it.</param>
    public static async Task<LeaseEnd?> KeepAsync(
        long ttlMs, TimeProvider clock, Func<TimeSpan, CancellationToken, Task<Watched>> watch, Func<Task<Renewed>> renew, CancellationToken stop)
    {
        var period = TimeSpan.FromMilliseconds(Math.Max(1, ttlMs / 3));
        var grantedUntil = clock.GetTimestamp() + Ticks(clock, ttlMs);
        try
        {
            while (true)
            {
                try
                {
                    // Between renewals the watch needs no re-check of its own: each renewal looks at the lease, so one that
                    // vanished behind the service's back is found within a period. Every Locks:RecheckMs instead would cost
                    // each held stream a script a second (measured: 4 Redis commands per second per stream, which 10,000
                    // streams on one instance could not sustain).
                    var watched = await watch(period, stop).ConfigureAwait(false);
                    if (watched.NoRoom)
                    {
                        // No watch to spare on this instance: renewals alone still keep it, and find a loss a period late at most.
                        await Task.Delay(period, clock, stop).ConfigureAwait(false);
                    }
                    else if (!watched.Held)
                    {
                        return Lost(watched.Ended);
                    }

                    var sent = clock.GetTimestamp();
                    var renewed = await renew().ConfigureAwait(false);
                    if (renewed.TtlMs is not long granted)
                    {
                        return Lost(renewed.Ended);
                    }

                    // Counted from before the request was sent: never later than Redis's own expiry.
                    grantedUntil = sent + Ticks(clock, granted);
                }
                catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
                {
                    var left = clock.GetElapsedTime(clock.GetTimestamp(), grantedUntil);
                    if (left <= TimeSpan.Zero)
                    {
                        return LeaseEnd.Unavailable;
                    }

                    // Try again soon, but never sleep past the last granted expiry.
                    await Task.Delay(left < RenewRetry ? left : RenewRetry, clock, stop).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return null;
        }

        // A lease that vanished (Redis lost it, a raw DEL) leaves no record: for its holder it expired.
        static LeaseEnd Lost(LeaseEnd? ended) => ended is null or LeaseEnd.Unknown ? LeaseEnd.Expired : ended.Value;
    }

    private static long Ticks(TimeProvider clock, long ms) => (long)(ms * (clock.TimestampFrequency / 1000.0));

    /// <summary>What a watch between renewals saw: still held, no watch to spare, or why it ended.</summary>
    public readonly record struct Watched(bool Held, bool NoRoom, LeaseEnd? Ended);

    /// <summary>What a renewal got: the TTL granted, or why the lease ended.</summary>
    public readonly record struct Renewed(long? TtlMs, LeaseEnd? Ended);
}
