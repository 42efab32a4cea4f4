using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>
/// Whom a read/write lock's notices wake in one instance's queue. Writers go first: a writer may try when no writer is ahead
/// of it, a reader only while no writer waits here at all (a waiting writer's mark keeps readers out in Redis anyway, so
/// their tries would be refused). A place freed wakes, by what the notice says (<see cref="RwLockNotice"/>): with nobody
/// holding, the first waiting writer; with no writer holding or waiting anywhere, every waiting reader at once. A reader
/// that gets in wakes the other readers (they may come in beside it); a waiter that leaves without the lease passes on a
/// wake-up it may have taken. The expiry timer wakes the first writer, or else the first reader.
/// </summary>
internal sealed class RwLockWake : WakePolicy
{
    /// <summary>A waiter's <see cref="WaitQueues.Waiter.Claim"/> when it asks for a read lease.</summary>
    public const long Reader = 0;

    /// <summary>A waiter's <see cref="WaitQueues.Waiter.Claim"/> when it asks for a write lease.</summary>
    public const long Writer = 1;

    public static readonly RwLockWake Instance = new();

    public override bool MayTry(WaitQueues.Waiter waiter)
    {
        for (var node = waiter.Queue.Waiters.First; node is not null; node = node.Next)
        {
            if (node.Value.Claim == Writer && (node != waiter.Node || waiter.Claim == Writer))
            {
                // The first writer: this waiter if it is a writer, else one that goes before this reader.
                return node == waiter.Node;
            }
        }

        return waiter.Claim == Reader;
    }

    public override void OnTimer(WaitQueues.KeyQueue queue)
    {
        Next(queue)?.Signal();
        queue.WakeWatchers();
    }

    public override void OnLeave(WaitQueues.KeyQueue queue, WaitQueues.Waiter waiter, bool wasHead, bool acquired)
    {
        if (acquired && waiter.Claim == Reader)
        {
            if (FirstWriter(queue) is null)
            {
                WakeReaders(queue);
            }
        }
        else if (!acquired && (wasHead || waiter.Claim == Writer))
        {
            Next(queue)?.Signal();
        }
    }

    protected override void OnFreed(WaitQueues.KeyQueue queue, RedisValue notice)
    {
        if (RwLockMessages.TryParse(notice, out var freed))
        {
            if (FirstWriter(queue) is { } writer)
            {
                if (freed.Free)
                {
                    writer.Signal();
                }
            }
            else if (freed.OpenToReaders)
            {
                WakeReaders(queue);
            }
        }
        else
        {
            // A shortened TTL: whoever may try looks again and re-arms the queue's timer to the new expiry.
            Next(queue)?.Signal();
        }

        queue.WakeWatchers();
    }

    private static WaitQueues.Waiter? FirstWriter(WaitQueues.KeyQueue queue)
    {
        foreach (var waiter in queue.Waiters)
        {
            if (waiter.Claim == Writer)
            {
                return waiter;
            }
        }

        return null;
    }

    // The waiter that may try now: the first writer, else the first reader.
    private static WaitQueues.Waiter? Next(WaitQueues.KeyQueue queue) => FirstWriter(queue) ?? queue.Waiters.First?.Value;

    private static void WakeReaders(WaitQueues.KeyQueue queue)
    {
        foreach (var waiter in queue.Waiters)
        {
            if (waiter.Claim == Reader)
            {
                waiter.Signal();
            }
        }
    }
}
