using LockService.Core.Leases;

namespace LockService.Core.Locks;

/// <summary>
/// The Redis key names of one lock: its main key (<see cref="LeaseKeys.KeyOf"/>: <c>lock:{orders-42}</c>) and the keys
/// named after it, which share its hash tag. The derived names are built only when used. See <see cref="LockScripts"/>
/// for what each holds.
/// </summary>
/// <param name="Lock">The lock: its lease (token, fencing token, TTL and the optional fields), expiring with it.</param>
public readonly record struct LockKeys(string Lock)
{
    /// <summary>The key's last fencing token (and nothing else), kept for <see cref="LeaseOptions.FenceRetentionMs"/> past its last lease's expiry.</summary>
    public string Fence => Lock + ":fence";

    /// <summary>The records of the key's older leases (why each ended), kept ten minutes past the last one's end.</summary>
    public string Leases => Lock + ":leases";

    /// <summary>The key's last lease (its state, when it was acquired, its token), kept 10 minutes past its end.</summary>
    public string LastLease => Lock + ":last";

    /// <summary>The pub/sub channel on which releases, shortened TTLs and idempotent acquires are announced.</summary>
    public string Channel => Lock + ":released";

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="LeaseOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public static LockKeys For(string prefix, LeaseName name) => new(LeaseKeys.KeyOf(prefix, name));
}
