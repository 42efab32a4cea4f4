namespace LockService.Core.Leases;

/// <summary>
/// Keeps a lease of any kind alive for as long as its holder wants it (a stream's connection): renews it every third of its
/// TTL and watches it in between, so that a loss is known at once. The engine keeps every kind's leases with it.
/// </summary>
internal static class LeaseKeeping
{
    // How soon a kept lease tries to renew again after Redis did not answer: often enough to catch a short outage,
    // rarely enough not to hammer a Redis that is coming back.
    private static readonly TimeSpan RenewRetry = TimeSpan.FromMilliseconds(250);

    // The shortest watch between two renewals, when the last cycle ran late: a look at the lease, then renew.
    private static readonly TimeSpan MinWatch = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Returns why the lease ended (one that vanished, or whose record is gone: <see cref="LeaseEnd.Expired"/>; Redis
    /// unreachable until the last granted expiry: <see cref="LeaseEnd.Unavailable"/>), or null when <paramref name="stop"/>
    /// was cancelled first, in which case the lease is still held and the caller releases it.
    /// </summary>
    /// <param name="lease">The lease as granted.</param>
    /// <param name="clock">The engine's clock.</param>
    /// <param name="watch">Watches the token's lease for up to the given time (and with that re-check).</param>
    /// <param name="extend">Extends the token's lease by the TTL it was acquired with.</param>
    /// <param name="renewed">Tells the holder of each renewal.</param>
    /// <param name="stop">The holder no longer wants it.</param>
    public static async Task<LeaseEnd?> KeepAsync<TLease, TInfo>(
        TLease lease,
        TimeProvider clock,
        Func<string, TimeSpan, CancellationToken, Task<CheckResult<TInfo>>> watch,
        Func<string, Task<ExtendResult<TLease>>> extend,
        Func<TLease, ValueTask> renewed,
        CancellationToken stop)
        where TLease : class, IKeptLease
        where TInfo : class
    {
        var ttlMs = lease.TtlMs;
        var period = Math.Max(1, ttlMs / 3);
        var grantedUntil = clock.GetTimestamp() + Ticks(clock, ttlMs);

        // Renewals keep to a schedule (a period after the last one was sent), so the time a watch and an extend take
        // does not pile up on top of the period: a slow cycle (a cold start, a loaded machine) is followed by a short one.
        var due = clock.GetTimestamp() + Ticks(clock, period);
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
                    var untilDue = clock.GetElapsedTime(clock.GetTimestamp(), due);
                    var wait = untilDue > MinWatch ? untilDue : MinWatch;
                    var watched = await watch(lease.Token, wait, stop).ConfigureAwait(false);
                    if (watched.NoRoomToWatch != NoRoom.None)
                    {
                        // No watch to spare on this instance, or in its tenant's share: renewals alone still keep it, and find a loss a period late at most.
                        await Task.Delay(wait, clock, stop).ConfigureAwait(false);
                    }
                    else if (watched.Info is null)
                    {
                        return Lost(watched.Ended);
                    }

                    var sent = clock.GetTimestamp();
                    var extended = await extend(lease.Token).ConfigureAwait(false);
                    if (extended.Lease is not { } now)
                    {
                        return Lost(extended.Ended);
                    }

                    // Counted from before the request was sent: never later than Redis's own expiry.
                    grantedUntil = sent + Ticks(clock, now.TtlMs);
                    due = sent + Ticks(clock, period);
                    await renewed(now).ConfigureAwait(false);
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
}
