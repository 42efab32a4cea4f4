namespace LockService.Core.Leases;

/// <summary>
/// How every kind names its Redis keys. A lease's main key carries its name as its Redis Cluster hash tag
/// (<c>lock:{orders-42}</c>), and every other key of the lease is the main key plus a suffix (<c>lock:{orders-42}:fence</c>),
/// so each script touches one slot; a tenant comes after the prefix and outside the braces (<c>lock:billing:{orders-42}</c>).
/// </summary>
public static class LeaseKeys
{
    /// <summary>The main key of <paramref name="name"/> under <paramref name="prefix"/> (a kind's key prefix).</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public static string KeyOf(string prefix, LeaseName name)
    {
        if (!LeaseName.IsValid(name.Key))
        {
            throw new ArgumentException(LeaseName.Rule, nameof(name));
        }

        return name.Tenant.Length == 0
            ? string.Concat(prefix, "{", name.Key, "}")
            : string.Concat(prefix, name.Tenant, ":{", name.Key, "}");
    }

    /// <summary>
    /// The <c>SCAN MATCH</c> pattern of the leases of <paramref name="tenant"/> whose names start with
    /// <paramref name="namePrefix"/>: <c>lock:{orders-*}</c>, <c>lock:billing:{orders-*}</c>. It ends with the closing
    /// brace, so the keys that share a lease's hash tag (<c>:fence</c>, <c>:leases</c>) never match, and the brace right
    /// after the tenant keeps one tenant's pattern from matching another's (tenants hold no <c>:</c>). Glob characters
    /// (<c>* ? [ ] \</c>) in the prefixes are escaped, so they match only themselves.
    /// </summary>
    public static string MatchPattern(string prefix, string tenant, string namePrefix) =>
        string.Concat(EscapeGlob(HeadOf(prefix, tenant)), EscapeGlob(namePrefix), "*}");

    /// <summary>
    /// The name in <paramref name="redisKey"/>, a key that <see cref="MatchPattern"/> matched for
    /// <paramref name="tenant"/>; null when it is not a valid name (a key written by hand).
    /// </summary>
    public static string? NameIn(string prefix, string tenant, string redisKey)
    {
        var head = HeadOf(prefix, tenant);
        if (redisKey.Length <= head.Length + 1 || !redisKey.StartsWith(head, StringComparison.Ordinal) || redisKey[^1] != '}')
        {
            return null;
        }

        var name = redisKey[head.Length..^1];
        return LeaseName.IsValid(name) ? name : null;
    }

    // Everything before a name: the prefix, the tenant and the opening brace of the hash tag.
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
