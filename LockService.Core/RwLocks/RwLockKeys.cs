using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>
/// The Redis key names of one read/write lock, named as a lock's are (<see cref="LockKeys"/>) under the read/write lock
/// prefix: every one carries the name as its hash tag (<c>rw:{orders}</c>, <c>rw:{orders}:fence</c>), so each script touches
/// one slot of a Redis Cluster; a tenant comes after the prefix and outside the braces (<c>rw:billing:{orders}</c>). See
/// <see cref="RwLockScripts"/> for what each holds.
/// </summary>
public readonly record struct RwLockKeys
{
    private readonly LockKeys _keys;

    private RwLockKeys(LockKeys keys) => _keys = keys;

    /// <summary>The held leases: a sorted set of tokens by expiry. The key operators' listings find.</summary>
    public string Held => _keys.Lock;

    /// <summary>Each held lease's record (mode, fencing token, times) and its owner and idempotency key.</summary>
    public string Holders => _keys.Lock + ":holders";

    /// <summary>The last fencing token of the name, one sequence for both modes.</summary>
    public string Fence => _keys.Fence;

    /// <summary>The records of the last leases (why each ended), as a lock's <see cref="LockKeys.Leases"/>.</summary>
    public string LeaseRecords => _keys.Leases;

    /// <summary>The marks of the writers waiting for the name, by expiry.</summary>
    public string Writers => _keys.Lock + ":writers";

    /// <summary>The pub/sub channel of freed places, shortened TTLs and idempotent acquires.</summary>
    public string Channel => _keys.Channel;

    /// <summary>The five keys every read/write lock script takes, in its order.</summary>
    internal RedisKey[] All => [Held, Holders, Fence, LeaseRecords, Writers];

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="RwLockOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name (the rules of a lock's).</exception>
    public static RwLockKeys For(string prefix, LockName name) => new(LockKeys.For(prefix, name));
}
