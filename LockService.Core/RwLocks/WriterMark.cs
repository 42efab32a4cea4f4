using LockService.Core.Leases;

namespace LockService.Core.RwLocks;

/// <summary>
/// A waiting writer's mark, held for as long as its request waits: renewed every <see cref="RwLockStore.MarkRenewal"/> (a
/// mark lives <see cref="RwLockStore.MarkTtl"/>, so a dead instance's lapses by itself), and removed when the request ends.
/// Removing it announces it, so the readers it held back are woken at once, on every instance.
/// </summary>
internal sealed class WriterMark : IWaitClaim
{
    private readonly RwLockStore _store;
    private readonly RwLockKeys _keys;
    private readonly string _mark;
    private readonly TimeProvider _clock;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;

    public WriterMark(RwLockStore store, RwLockKeys keys, string mark, TimeProvider clock)
    {
        (_store, _keys, _mark, _clock) = (store, keys, mark, clock);
        _renewing = RenewAsync();
    }

    /// <summary>
    /// Stops renewing and removes the mark. A request that got the lease had its mark removed by the grant, but a renewal sent
    /// just before could have put it back, so the removal is sent in every case; then it need not hold up the answer.
    /// </summary>
    public ValueTask EndAsync(bool acquired)
    {
        _stop.Cancel();
        var removed = RemoveAsync();
        return acquired ? ValueTask.CompletedTask : new ValueTask(removed);
    }

    private async Task RenewAsync()
    {
        try
        {
            // The first renewal at once: the request may wait behind another writer of this instance without trying, and
            // then holds no mark yet; readers elsewhere must see that a writer waits.
            while (true)
            {
                try
                {
                    await _store.MarkAsync(_keys, _mark).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Redis unreachable, or the marks key written by hand (which the request's own attempts report): the
                    // next renewal tries again; until then the mark lives its TTL.
                }

                await Task.Delay(RwLockStore.MarkRenewal, _clock, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The request ended.
        }
    }

    private async Task RemoveAsync()
    {
        // After the last renewal: both go on one connection, so Redis runs the removal after it.
        await _renewing.ConfigureAwait(false);
        try
        {
            await _store.UnmarkAsync(_keys, _mark).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Redis is unreachable (or the key holds what this service never writes): the mark lapses by itself within its
            // TTL. The request has its answer already; this is no part of it.
        }
        finally
        {
            _stop.Dispose();
        }
    }
}
