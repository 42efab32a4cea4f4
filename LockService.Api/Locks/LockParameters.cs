using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LockService.Api.Errors;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace LockService.Api.Locks;

/// <summary>The parameters of one request, from the query string and/or a JSON body.</summary>
internal readonly record struct LockParameters(long? TtlMs, long? WaitMs, string? Owner, string? IdempotencyKey = null);

/// <summary>
/// Reads parameters strictly: a typo, a duplicate, a quoted or fractional number or a value out of range is
/// a 400 naming the parameter, never silently ignored. The body is read by hand (at most 4 KiB) so that its
/// size and content type are answered with 413/415 before anything else is looked at.
/// </summary>
internal static class LockParameterReader
{
    public const int MaxBodyBytes = 4096;
    public const int MaxOwnerLength = 128;

    public const string TtlMs = "ttlMs";
    public const string WaitMs = "waitMs";
    public const string Owner = "owner";

    // The key of the errors object for what is wrong with the body as a whole, where no member can be named.
    private const string Body = "body";

    private const string BadText = "it holds bytes that are not UTF-8, or a \\u escape that is half of a surrogate pair.";

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>Reads the body up to the limit. A problem means the body itself was answered (413/415, or 400 when it cannot be read).</summary>
    public static async ValueTask<(byte[]? Body, ProblemHttpResult? Problem)> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return (null, Problems.TooLarge(MaxBodyBytes));
        }

        if (request.ContentLength == 0 || (request.ContentLength is null && !request.Headers.ContainsKey(HeaderNames.TransferEncoding)))
        {
            return (null, null);
        }

        var buffer = ArrayPool<byte>.Shared.Rent(MaxBodyBytes + 1);
        try
        {
            var length = 0;
            int read;
            while ((read = await request.Body.ReadAsync(buffer.AsMemory(length, MaxBodyBytes + 1 - length), cancellationToken)) > 0)
            {
                length += read;
                if (length > MaxBodyBytes)
                {
                    return (null, Problems.TooLarge(MaxBodyBytes));
                }
            }

            if (length == 0)
            {
                return (null, null);
            }

            if (!IsJson(request.ContentType))
            {
                return (null, Problems.NotJson(request.ContentType));
            }

            return (buffer.AsSpan(0, length).ToArray(), null);
        }
        catch (BadHttpRequestException ex)
        {
            // Kestrel's word on a body that breaks HTTP itself: shorter than its Content-Length, broken chunked framing,
            // or sent too slowly. Not a bug of the service, so not a 500.
            return (null, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? Problems.TooLarge(MaxBodyBytes)
                : Problems.Invalid(
                    new Dictionary<string, string[]>(StringComparer.Ordinal) { [Body] = ["The body could not be read: it ended before its Content-Length, its chunked encoding is broken, or it came too slowly."] },
                    "The request body could not be read."));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Parses query and body against the allowed names; errors are keyed by parameter name.</summary>
    public static LockParameters Parse(
        IQueryCollection query, byte[]? body, string[] allowed, long maxTtlMs, long maxWaitMs, ref Dictionary<string, string[]>? errors)
    {
        long? ttl = null, wait = null;
        string? owner = null;
        var seen = body is null ? null : new HashSet<string>(StringComparer.Ordinal);   // only a body can repeat a query parameter

        // The usual request names only allowed parameters: look those up (an array, so its foreach allocates nothing)
        // instead of enumerating the query, whose enumerator is allocated on every request. Anything else goes through the loop that reports unknowns.
        var known = 0;
        foreach (var name in allowed)
        {
            if (query.TryGetValue(name, out var values))
            {
                known++;
                Take(name, values, seen, ref errors, ref ttl, ref wait, ref owner);
            }
        }

        if (known != query.Count)
        {
            foreach (var (name, _) in query)
            {
                if (!allowed.Contains(name))
                {
                    Add(ref errors, name, Unknown(name, allowed));
                }
            }
        }

        if (body is not null)
        {
            ParseBody(body, allowed, seen!, ref errors, ref ttl, ref wait, ref owner);
        }

        if (ttl is long t && (t < 10 || t > maxTtlMs))
        {
            Add(ref errors, TtlMs, $"'ttlMs' must be between 10 and {maxTtlMs}; got {t}.");
        }

        if (wait is long w && (w < 0 || w > maxWaitMs))
        {
            Add(ref errors, WaitMs, $"'waitMs' must be between 0 and {maxWaitMs}; got {w}.");
        }

        return new LockParameters(ttl, wait, owner);
    }

    private static void Take(
        string name, StringValues values, HashSet<string>? seen, ref Dictionary<string, string[]>? errors, ref long? ttl, ref long? wait, ref string? owner)
    {
        seen?.Add(name);
        if (values.Count != 1)
        {
            Add(ref errors, name, $"'{name}' is given {values.Count} times; give it once.");
            return;
        }

        var text = values[0] ?? string.Empty;
        if (name == Owner)
        {
            owner = CheckOwner(text, ref errors);
        }
        else if (ParseInteger(name, text, ref errors) is long number)
        {
            Assign(name, number, ref ttl, ref wait);
        }
    }

    private static void ParseBody(
        byte[] body, IReadOnlyCollection<string> allowed, HashSet<string> seen, ref Dictionary<string, string[]>? errors,
        ref long? ttl, ref long? wait, ref string? owner)
    {
        // A UTF-8 byte order mark may start a JSON text (RFC 8259 lets parsers ignore it; System.Text.Json's own readers do).
        var json = body.AsSpan();
        if (json.StartsWith(Utf8Bom))
        {
            json = json[Utf8Bom.Length..];
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                Add(ref errors, Body, "The body must be a JSON object such as {\"ttlMs\":5000}.");
                return;
            }

            var inBody = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (TryGetString(ref reader) is not { } name)
                {
                    Add(ref errors, Body, "A member name is not valid text: " + BadText);
                    reader.Read();
                    reader.Skip();
                    continue;
                }

                reader.Read();
                if (!allowed.Contains(name))
                {
                    Add(ref errors, name, Unknown(name, allowed));
                    reader.Skip();
                    continue;
                }

                if (!inBody.Add(name))
                {
                    Add(ref errors, name, $"'{name}' appears twice in the body; give it once.");
                    reader.Skip();
                    continue;
                }

                if (reader.TokenType == JsonTokenType.Null)
                {
                    continue;
                }

                if (seen.Contains(name))
                {
                    Add(ref errors, name, $"'{name}' is given both in the query and in the body; give it once.");
                    reader.Skip();
                    continue;
                }

                if (name == Owner)
                {
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        Add(ref errors, name, "'owner' must be a string.");
                        reader.Skip();
                        continue;
                    }

                    if (TryGetString(ref reader) is { } text)
                    {
                        owner = CheckOwner(text, ref errors);
                    }
                    else
                    {
                        Add(ref errors, Owner, "'owner' is not valid text: " + BadText);
                    }
                }
                else if (reader.TokenType != JsonTokenType.Number)
                {
                    Add(ref errors, name, $"'{name}' must be a JSON number that is a whole number of milliseconds, not a {Describe(reader.TokenType)}.");
                    reader.Skip();
                }
                else if (ParseInteger(name, Encoding.UTF8.GetString(reader.ValueSpan), ref errors) is long number)
                {
                    Assign(name, number, ref ttl, ref wait);
                }
            }

            if (reader.Read())
            {
                Add(ref errors, Body, "The body holds more than one JSON value.");
            }
        }
        catch (JsonException)
        {
            Add(ref errors, Body, "The body is not valid JSON.");
        }
    }

    /// <summary>The string at the reader, or null when its bytes are not UTF-8 or its \u escapes are not UTF-16.</summary>
    /// <remarks>
    /// The reader checks a string's text only when it decodes it, and has no way to ask without decoding: bad text is
    /// an InvalidOperationException from GetString (the token is known to be a string or a name here, so that is
    /// the only reason it can throw). It is thrown at most once per member, for hostile input only.
    /// </remarks>
    private static string? TryGetString(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private static long? ParseInteger(string name, string text, ref Dictionary<string, string[]>? errors)
    {
        var digits = text.StartsWith('-') ? text.AsSpan(1) : text.AsSpan();
        if (digits.Length == 0 || digits.ContainsAnyExceptInRange('0', '9')
            || !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            Add(ref errors, name, $"'{name}' must be a plain whole number of milliseconds (digits only, such as 5000).");
            return null;
        }

        return value;
    }

    private static string? CheckOwner(string owner, ref Dictionary<string, string[]>? errors)
    {
        if (owner.Length is 0 or > MaxOwnerLength || owner.Any(char.IsControl))
        {
            Add(ref errors, Owner, $"'owner' must be 1-{MaxOwnerLength} characters without control characters.");
            return null;
        }

        return owner;
    }

    private static void Assign(string name, long value, ref long? ttl, ref long? wait)
    {
        if (name == TtlMs)
        {
            ttl = value;
        }
        else
        {
            wait = value;
        }
    }

    // JSON over a network is UTF-8 (RFC 8259): a body declared in another charset is one this service cannot read.
    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.MediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.MediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
        && (media.Charset.Length == 0
            || HeaderUtilities.RemoveQuotes(media.Charset).Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(media.Charset).Equals("utf8", StringComparison.OrdinalIgnoreCase));

    private static string Unknown(string name, IReadOnlyCollection<string> allowed) =>
        allowed.Count == 0
            ? $"Unknown parameter '{name}': this endpoint takes no parameters."
            : $"Unknown parameter '{name}': this endpoint takes {string.Join(", ", allowed.Select(a => $"'{a}'"))}.";

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "string",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.StartArray => "array",
        JsonTokenType.StartObject => "object",
        _ => token.ToString().ToLowerInvariant(),
    };

    private static void Add(ref Dictionary<string, string[]>? errors, string name, string message)
    {
        errors ??= new Dictionary<string, string[]>(StringComparer.Ordinal);
        errors[name] = errors.TryGetValue(name, out var existing) ? [.. existing, message] : [message];
    }
}
