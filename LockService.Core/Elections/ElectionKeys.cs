using LockService.Core.Leases;
using LockService.Core.Locks;

namespace LockService.Core.Elections;

/// <summary>
/// The Redis key names of one election, laid out as a lock's (<see cref="LockKeys"/>) under the elections' own prefix
/// (<see cref="ElectionOptions.KeyPrefix"/>), so that the lock scripts that keep a lease, its fencing token and its lease
/// records serve an election's leader too: <c>elect:{svc}</c>, <c>elect:{svc}:fence</c>, and with a tenant
/// <c>elect:billing:{svc}</c>. Every key carries the election's name as its hash tag.
/// </summary>
/// <param name="Leader">The main key (<see cref="LeaseKeys.KeyOf"/>): the leader's lease (token, term, TTL, acquired at, hold cap, idempotency key, value), expiring with it.</param>
public readonly record struct ElectionKeys(string Leader)
{
    /// <summary>The election's last term (its last fencing token), kept for <see cref="LeaseOptions.FenceRetentionMs"/> past the last lease's expiry.</summary>
    public string Term => new LockKeys(Leader).Fence;

    /// <summary>The records of the older leaderships (why each ended), kept ten minutes past the last one's end.</summary>
    public string Leases => new LockKeys(Leader).Leases;

    /// <summary>The last leadership (its state, when it began, its token), kept 10 minutes past its end.</summary>
    public string LastLease => new LockKeys(Leader).LastLease;

    /// <summary>
    /// The pub/sub channel of every change an observer must see (a new term, a new value, a resignation or force, a shorter
    /// TTL) and of the notices a waiting candidate or a watch wakes on; an expiry publishes nothing.
    /// </summary>
    public string Channel => Leader + ":changed";

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/>.</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public static ElectionKeys For(string prefix, LeaseName name) => new(LeaseKeys.KeyOf(prefix, name));
}
