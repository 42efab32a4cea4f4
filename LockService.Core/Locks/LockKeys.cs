namespace LockService.Core.Locks;

/// <summary>
/// The Redis key names of one lock. Every one carries the lock's name as its Redis Cluster hash tag
/// (<c>lock:{orders-42}</c>, <c>lock:{orders-42}:fence</c>), so each script touches one slot; a tenant comes after
/// the prefix and outside the braces (<c>lock:billing:{orders-42}</c>). The derived names are built only when used.
/// </summary>
public readonly record struct LockKeys
{
    private LockKeys(string lockKey) => Lock = lockKey;

    /// <summary>The lock: its lease (token, fencing token, TTL and the optional fields), expiring with it.</summary>
    public string Lock { get; }

    /// <summary>The key's last fencing token (and nothing else), kept for <see cref="LockOptions.FenceRetentionMs"/> past its last lease's expiry.</summary>
    public string Fence => Lock + ":fence";

    /// <summary>The records of the key's older leases (why each ended), kept ten minutes past the last one's end.</summary>
    public string Leases => Lock + ":leases";

    /// <summary>The key's last lease (its state, when it was acquired, its token), kept 10 minutes past its end.</summary>
    public string LastLease => Lock + ":last";

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

    /// <summary>
    /// The <c>SCAN MATCH</c> pattern of the locks of <paramref name="tenant"/> whose names start with
    /// <paramref name="namePrefix"/>: <c>lock:{orders-*}</c>, <c>lock:billing:{orders-*}</c>. It ends with the closing
    /// brace, so the keys that share a lock's hash tag (<c>:fence</c>, <c>:leases</c>) never match, and the brace right
    /// after the tenant keeps one tenant's pattern from matching another's (tenants hold no <c>:</c>). Glob characters
    /// (<c>* ? [ ] \</c>) in the prefixes are escaped, so they match only themselves.
    /// </summary>
    public static string MatchPattern(string prefix, string tenant, string namePrefix) =>
        string.Concat(EscapeGlob(HeadOf(prefix, tenant)), EscapeGlob(namePrefix), "*}");

    /// <summary>
    /// The lock name in <paramref name="redisKey"/>, a key that <see cref="MatchPattern"/> matched for
    /// <paramref name="tenant"/>; null when it is not a valid lock name (a key written by hand).
    /// </summary>
    public static string? NameIn(string prefix, string tenant, string redisKey)
    {
        var head = HeadOf(prefix, tenant);
        if (redisKey.Length <= head.Length + 1 || !redisKey.StartsWith(head, StringComparison.Ordinal) || redisKey[^1] != '}')
        {
            return null;
        }

        var name = redisKey[head.Length..^1];
        return LockName.IsValid(name) ? name : null;
    }

    // Everything before a lock's name: the prefix, the tenant and the opening brace of the hash tag.
    private static string HeadOf(string prefix, string tenant) =>
        tenant.Length == 0 ? prefix + "{" : string.Concat(prefix, tenant, ":{");

    private static string EscapeGlob(string text)
    {
        if (text.AsSpan().IndexOfAny(@"*?[]") < 0)
        {
            return text;
        }

        var escaped = new System.Text.StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '\\')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }
}
