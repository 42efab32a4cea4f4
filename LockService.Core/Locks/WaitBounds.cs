using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>The bounds on requests one instance lets wait (<see cref="LockOptions.MaxWaiters"/>) and watches it keeps open (<see cref="LockOptions.MaxWatchers"/>).</summary>
public static class WaitBounds
{
    /// <summary>
    /// Makes the engines created over <paramref name="multiplexer"/> from now on (the lock engine and the semaphore engine of
    /// one service instance) count their waiting requests and their watches against one pair of bounds, so that an instance
    /// never has more than <see cref="LockOptions.MaxWaiters"/> requests waiting, for locks and semaphores together. Without
    /// it each engine has bounds of its own. Keyed by the multiplexer (the process's one), held weakly.
    /// </summary>
    public static void Share(IConnectionMultiplexer multiplexer, LockOptions options) =>
        WaitQueues.ShareBounds(multiplexer, options.MaxWaiters, options.MaxWatchers);
}
