using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.Semaphores;

/// <summary>
/// The Redis key names of one semaphore: its main key (<see cref="LeaseKeys.KeyOf"/> under the semaphore prefix:
/// <c>sem:{reports}</c>) and the keys named after it, which share its hash tag (<c>sem:{reports}:permits</c>). See
/// <see cref="SemaphoreScripts"/> for what each holds.
/// </summary>
/// <param name="Semaphore">The held permits: a sorted set of tokens by expiry. The key operators' listings find.</param>
public readonly record struct SemaphoreKeys(string Semaphore)
{
    /// <summary>Each permit's record (slot, fencing token, times, limit) and its owner and idempotency key.</summary>
    public string Permits => Semaphore + ":permits";

    /// <summary>Which permit holds each slot.</summary>
    public string Slots => Semaphore + ":slots";

    /// <summary>The last fencing token of each slot.</summary>
    public string Fence => Semaphore + ":fence";

    /// <summary>The records of the last permits (why each ended).</summary>
    public string Leases => Semaphore + ":leases";

    /// <summary>The pub/sub channel of freed places, shortened TTLs and idempotent acquires.</summary>
    public string Channel => Semaphore + ":released";

    /// <summary>The five keys every semaphore script takes, in its order.</summary>
    internal RedisKey[] All => [Semaphore, Permits, Slots, Fence, Leases];

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="SemaphoreOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public static SemaphoreKeys For(string prefix, LeaseName name) => new(LeaseKeys.KeyOf(prefix, name));
}
