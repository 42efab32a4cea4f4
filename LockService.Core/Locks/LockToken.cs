using System.Security.Cryptography;

namespace LockService.Core.Locks;

/// <summary>Ownership tokens: 128 bits from a CSPRNG as 32 lowercase hex characters.</summary>
public static class LockToken
{
    /// <summary>Length of every token.</summary>
    public const int Length = 32;

    /// <summary>A new unguessable token.</summary>
    public static string New()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>True when <paramref name="token"/> has the shape of a token (upper case is not a token).</summary>
    public static bool IsValid(ReadOnlySpan<char> token)
    {
        if (token.Length != Length)
        {
            return false;
        }

        foreach (var c in token)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return true;
    }
}
