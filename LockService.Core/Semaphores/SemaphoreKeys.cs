using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.Semaphores;

/// <summary>
/// The Redis key names of one semaphore, named as a lock's are (<see cref="LockKeys"/>) under the semaphore prefix: every
/// one carries the semaphore's name as its hash tag (<c>sem:{reports}</c>, <c>sem:{reports}:permits</c>), a tenant comes
/// after the prefix and outside the braces (<c>sem:billing:{reports}</c>). See <see cref="SemaphoreScripts"/> for what each holds.
/// </summary>
public readonly record struct SemaphoreKeys
{
    private readonly LockKeys _keys;

    private SemaphoreKeys(LockKeys keys) => _keys = keys;

    /// <summary>The held permits: a sorted set of tokens by expiry. The key operators' listings find.</summary>
    public string Semaphore => _keys.Lock;

    /// <summary>Each permit's record (slot, fencing token, times, limit) and its owner and idempotency key.</summary>
    public string Permits => _keys.Lock + ":permits";

    /// <summary>Which permit holds each slot.</summary>
    public string Slots => _keys.Lock + ":slots";

    /// <summary>The last fencing token of each slot.</summary>
    public string Fence => _keys.Fence;

    /// <summary>The records of the last permits (why each ended).</summary>
    public string Leases => _keys.Leases;

    /// <summary>The pub/sub channel of freed places, shortened TTLs and idempotent acquires.</summary>
    public string Channel => _keys.Channel;

    /// <summary>The five keys every semaphore script takes, in its order.</summary>
    internal RedisKey[] All => [Semaphore, Permits, Slots, Fence, Leases];

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="SemaphoreOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name (the rules of a lock's).</exception>
    public static SemaphoreKeys For(string prefix, LockName name) => new(LockKeys.For(prefix, name));
}
