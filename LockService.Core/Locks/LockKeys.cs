namespace LockService.Core.Locks;

/// <summary>
/// The Redis key names of one lock. Every one carries the lock's name as its Redis Cluster hash tag
/// (<c>lock:{orders-42}</c>, <c>lock:{orders-42}:fence</c>), so each script touches one slot; a tenant comes after
/// the prefix and outside the braces (<c>lock:billing:{orders-42}</c>). The derived names are built only when used.
/// </summary>
public readonly record struct LockKeys
{
    private LockKeys(string lockKey) => Lock = lockKey;

    /// <summary>The lock's hash: token, fencing token, TTL and the optional fields.</summary>
    public string Lock { get; }

    /// <summary>The key's last fencing token, kept for <see cref="LockOptions.FenceRetentionMs"/> after its last use.</summary>
    public string Fence => Lock + ":fence";

    /// <summary>The records of the key's last leases (why each ended), kept ten minutes past the last one's end.</summary>
    public string Leases => Lock + ":leases";

    /// <summary>The pub/sub channel on which releases, shortened TTLs and idempotent acquires are announced.</summary>
    public string Channel => Lock + ":released";

    /// <summary>The keys of <paramref name="name"/> under <paramref name="prefix"/> (<see cref="LockOptions.KeyPrefix"/>).</summary>
    /// <exception cref="ArgumentException">The name is not a valid lock name.</exception>
    public static LockKeys For(string prefix, LockName name)
    {
        if (!LockName.IsValid(name.Key))
        {
            throw new ArgumentException("A lock name is 1-200 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit.", nameof(name));
        }

        return new LockKeys(name.Tenant.Length == 0
            ? string.Concat(prefix, "{", name.Key, "}")
            : string.Concat(prefix, name.Tenant, ":{", name.Key, "}"));
    }
}
