using System.Buffers;

namespace LockService.Core.Leases;

/// <summary>A lease's name (a lock's, a semaphore's, ...) within a tenant's key space. The tenant is empty when authentication is off.</summary>
/// <param name="Tenant">The tenant that owns the name, or an empty string.</param>
/// <param name="Key">The name as the caller gave it.</param>
public readonly record struct LeaseName(string Tenant, string Key)
{
    /// <summary>Longest name accepted.</summary>
    public const int MaxLength = 200;

    /// <summary>The rule <see cref="IsValid"/> holds a name to, in words.</summary>
    public const string Rule = "Keys are 1-200 characters from A-Z a-z 0-9 . _ : - and start with a letter or digit.";

    /// <summary>The rule <see cref="IsValidPrefix"/> holds a listing's prefix to, in words.</summary>
    public const string PrefixRule = "A prefix is up to 200 characters from A-Z a-z 0-9 . _ : - (a key's characters).";

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");

    /// <summary>A name in the default (no-tenant) key space.</summary>
    public static LeaseName Of(string key) => new(string.Empty, key);

    /// <summary>
    /// True when <paramref name="key"/> is 1-200 characters from <c>A-Z a-z 0-9 . _ : -</c>, starting with a
    /// letter or digit. Braces are never allowed, so a name cannot break out of its Redis Cluster hash tag.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<char> key) =>
        key.Length is > 0 and <= MaxLength && char.IsAsciiLetterOrDigit(key[0]) && !key.ContainsAnyExcept(Allowed);

    /// <summary>True when <paramref name="prefix"/> could begin a name: 0-200 characters from <c>A-Z a-z 0-9 . _ : -</c>.</summary>
    public static bool IsValidPrefix(ReadOnlySpan<char> prefix) => prefix.Length <= MaxLength && !prefix.ContainsAnyExcept(Allowed);
}
