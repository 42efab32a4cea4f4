using System.Text.Json;

namespace LockService.Bench.Http;

/// <summary>Reads the one member a mode needs from a lock answer (a lease's token, a 404's reason) without a DOM.</summary>
internal static class LockJson
{
    /// <summary>Moves the reader onto the string value of the top-level member <paramref name="name"/>; false when there is none.</summary>
    public static bool TryFindString(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals(name))
                {
                    return reader.Read() && reader.TokenType == JsonTokenType.String;
                }
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }

    /// <summary>The top-level string member <paramref name="name"/> of <paramref name="json"/>, null when there is none.</summary>
    public static string? ReadString(ReadOnlySpan<byte> json, ReadOnlySpan<byte> name)
    {
        var reader = new Utf8JsonReader(json);
        return TryFindString(ref reader, name) ? reader.GetString() : null;
    }

    /// <summary>
    /// The token goes into a URL path as it is: anything but letters and digits would need escaping and is not a
    /// token of the contract anyway.
    /// </summary>
    public static bool IsToken(ReadOnlySpan<char> token)
    {
        foreach (char c in token)
        {
            if (!char.IsAsciiLetterOrDigit(c))
            {
                return false;
            }
        }

        return token.Length > 0;
    }
}
