using System.Buffers;

namespace LockService.Core.Locks;

/// <summary>A lock's name within a tenant's key space. The tenant is empty when authentication is off.</summary>
/// <param name="Tenant">The tenant that owns the lock, or an empty string.</param>
/// <param name="Key">The lock's name as the caller gave it.</param>
public readonly record struct LockName(string Tenant, string Key)
{
    /// <summary>Longest lock name accepted.</summary>
    public const int MaxLength = 200;

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");

    /// <summary>A name in the default (no-tenant) key space.</summary>
    public static LockName Of(string key) => new(string.Empty, key);

    /// <summary>
    /// True when <paramref name="key"/> is 1-200 characters from <c>A-Z a-z 0-9 . _ : -</c>, starting with a
    /// letter or digit. Braces are never allowed, so a name cannot break out of its Redis Cluster hash tag.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<char> key) =>
        key.Length is > 0 and <= MaxLength && char.IsAsciiLetterOrDigit(key[0]) && !key.ContainsAnyExcept(Allowed);

    /// <summary>True when <paramref name="prefix"/> could begin a lock name: 0-200 characters from <c>A-Z a-z 0-9 . _ : -</c>.</summary>
    public static bool IsValidPrefix(ReadOnlySpan<char> prefix) => prefix.Length <= MaxLength && !prefix.ContainsAnyExcept(Allowed);
}
