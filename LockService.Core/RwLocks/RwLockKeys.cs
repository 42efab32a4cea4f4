using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>
/// The Redis key names of one read/write lock: its main key (<see cref="LeaseKeys.KeyOf"/> under the read/write lock prefix:
/// <c>rw:{orders}</c>) and the keys named after it, which share its hash tag (<c>rw:{orders}:fence</c>), so each script
/// touches one slot of a Redis Cluster. See <see cref="RwLockScripts"/> for what each holds.
/// </summary>
/// <param name="Held">The held leases: a sorted set of tokens by expiry. The key operators' listings find.</param>
public readonly record struct RwLockKeys(string Held)
{
    /// <summary>Each held lease's record (mode, fencing token, times, idempotency key, owner).</summary>
    public string Holders => Held + ":holders";

    /// <summary>The last fencing token of the name, one sequence for both modes.</summary>
    public string Fence => Held + ":fence";

    /// <summary>The records of the last leases (why each ended).</summary>
    public string LeaseRecords => Held + ":leases";

    /// <summary>The marks of the writers waiting for the name, by expiry.</summary>
    public string Writers => Held + ":writers";

    /// <summary>The pub/sub channel of freed places, shortened TTLs and idempotent acquires.</summary>
    public string Channel => Held + ":released";

    /// <summary>The five keys every read/write lock script takes, in its order.</summary>
    internal RedisKey[] All => [Held, Holders, Fence, LeaseRecords, Writers];

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="RwLockOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public static RwLockKeys For(string prefix, LeaseName name) => new(LeaseKeys.KeyOf(prefix, name));
}
