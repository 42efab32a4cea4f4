using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// Whom a kind's notices wake, in one instance's queue of a lease (<see cref="WaitQueues"/>). This base is the policy of a
/// kind whose freed place goes to one waiter (a lock, an election): a release, a shortened TTL or the expiry timer wakes
/// the head of the queue and every watch, and only the head tries (no thundering herd; a head that loses the race to
/// another instance stays at the head). A kind whose freed places go to several waiters overrides it. Every method runs
/// under the queues' gate.
/// </summary>
internal class WakePolicy
{
    /// <summary>The policy of a kind whose freed place goes to one waiter.</summary>
    public static readonly WakePolicy OnePlace = new();

    /// <summary>
    /// A notice published on the lease's channel. An acquire with an Idempotency-Key announces itself, and only a waiting
    /// retry with an idempotency key can gain from it (it may be its own); anything else freed or shortened the lease.
    /// </summary>
    public void OnNotice(WaitQueues.KeyQueue queue, RedisValue notice)
    {
        if (notice == LeaseNotices.Acquired)
        {
            foreach (var waiter in queue.Waiters)
            {
                if (waiter.Idempotent)
                {
                    waiter.Signal();
                }
            }

            return;
        }

        OnFreed(queue, notice);
    }

    /// <summary>A notice that something was freed or shortened: the head tries (and, if still taken, re-arms the queue's timer); every watch looks.</summary>
    protected virtual void OnFreed(WaitQueues.KeyQueue queue, RedisValue notice) => queue.WakeHeadAndWatchers();

    /// <summary>
    /// The queue's timer fired (the lease in the way should have expired: expiries publish nothing), or the connection to
    /// Redis came back or failed (notices may have been lost): the waiter that may try looks, and every watch.
    /// </summary>
    public virtual void OnTimer(WaitQueues.KeyQueue queue) => queue.WakeHeadAndWatchers();

    /// <summary>Whether a waiter may try now rather than wait for a wake-up: only the head, so that those ahead keep their turn.</summary>
    public virtual bool MayTry(WaitQueues.Waiter waiter) => waiter.Queue.Waiters.First == waiter.Node;

    /// <summary>
    /// A waiter left, with the lease (<paramref name="acquired"/>; the kind's state after its grant is the waiter's
    /// <see cref="WaitQueues.Waiter.StateAfter"/>) or without. A head that leaves without it passes on a wake-up it may have
    /// consumed to the next.
    /// </summary>
    public virtual void OnLeave(WaitQueues.KeyQueue queue, WaitQueues.Waiter waiter, bool wasHead, bool acquired)
    {
        if (wasHead && !acquired)
        {
            queue.Waiters.First?.Value.Signal();
        }
    }
}

/// <summary>The notices every kind's scripts publish on a lease's channel (a kind may add its own).</summary>
public static class LeaseNotices
{
    /// <summary>Published by a release and a force-release: the place is free.</summary>
    public const string Released = "released";

    /// <summary>Published by an acquire with an Idempotency-Key: a retry waiting on another instance may find its own lease.</summary>
    public const string Acquired = "acquired";

    /// <summary>Published by an extend that shortened the TTL: the waiters' expiry timers must move closer.</summary>
    public const string Shortened = "shortened";
}
