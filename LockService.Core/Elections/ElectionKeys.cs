using LockService.Core.Locks;

namespace LockService.Core.Elections;

/// <summary>
/// The Redis key names of one election, laid out as a lock's (<see cref="LockKeys"/>) under the elections' own prefix
/// (<see cref="ElectionOptions.KeyPrefix"/>), so that the lock scripts that already keep a lease, its fencing token and its
/// lease records serve an election's leader too: <c>elect:{svc}</c>, <c>elect:{svc}:fence</c>, and with a tenant
/// <c>elect:billing:{svc}</c>. Every key carries the election's name as its hash tag.
/// </summary>
public readonly record struct ElectionKeys
{
    private readonly LockKeys _keys;

    private ElectionKeys(LockKeys keys) => _keys = keys;

    /// <summary>The leader's lease (token, term, TTL, acquired at, hold cap, idempotency key, value), expiring with it.</summary>
    public string Leader => _keys.Lock;

    /// <summary>The election's last term (its last fencing token), kept for <see cref="LockOptions.FenceRetentionMs"/> past the last lease's expiry.</summary>
    public string Term => _keys.Fence;

    /// <summary>The records of the older leaderships (why each ended), kept ten minutes past the last one's end.</summary>
    public string Leases => _keys.Leases;

    /// <summary>The last leadership (its state, when it began, its token), kept 10 minutes past its end.</summary>
    public string LastLease => _keys.LastLease;

    /// <summary>
    /// The pub/sub channel of every change an observer must see (a new term, a new value, a resignation or force) and of
    /// the notices a waiting candidate wakes on; an expiry publishes nothing.
    /// </summary>
    public string Channel => _keys.Lock + ":changed";

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/>.</summary>
    /// <exception cref="ArgumentException">The name is not a valid election name (the lock rule for names).</exception>
    public static ElectionKeys For(string prefix, LockName name) => new(LockKeys.For(prefix, name));
}
