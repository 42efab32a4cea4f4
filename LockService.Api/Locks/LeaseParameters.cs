using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LockService.Api.Errors;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace LockService.Api.Locks;

/// <summary>The parameters of one request, from the query string and/or a JSON body; null when absent.</summary>
internal readonly record struct LeaseParameters(long? TtlMs, long? WaitMs, string? Owner, long? MaxHoldMs, string? IdempotencyKey = null, long? Limit = null, string? Value = null, string? Mode = null)
{
    /// <summary>A listing's name prefix.</summary>
    public string? Prefix { get; init; }

    /// <summary>A listing's cursor.</summary>
    public string? Cursor { get; init; }

    public LeaseParameters With(ParameterField field, long value) => field switch
    {
        ParameterField.TtlMs => this with { TtlMs = value },
        ParameterField.WaitMs => this with { WaitMs = value },
        ParameterField.MaxHoldMs => this with { MaxHoldMs = value },
        ParameterField.Limit => this with { Limit = value },
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "Not a number parameter."),
    };

    public LeaseParameters With(ParameterField field, string text) => field switch
    {
        ParameterField.Owner => this with { Owner = text },
        ParameterField.Mode => this with { Mode = text },
        ParameterField.Prefix => this with { Prefix = text },
        ParameterField.Cursor => this with { Cursor = text },
        ParameterField.Value => this with { Value = text },
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, "Not a text parameter."),
    };

    /// <summary>The lease terms these parameters ask for (the default TTL when none is given).</summary>
    public AcquireRequest Terms(LeaseOptions limits) => new(TtlMs ?? limits.DefaultTtlMs, WaitMs ?? 0, Owner, IdempotencyKey, MaxHoldMs);
}

/// <summary>
/// Reads parameters strictly, as the operation's <see cref="OperationParameters"/> declare them: a typo, a duplicate,
/// or a quoted or fractional number is a 400 naming the parameter, never silently ignored (ranges are Core's
/// <see cref="LeaseRules"/>, checked on the request built from these). The body is read by hand (at most 4 KiB) so
/// that its size and content type are answered with 413/415 before anything else is looked at.
/// </summary>
internal static class LeaseParameterReader
{
    public const int MaxBodyBytes = 4096;

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

    /// <summary>Parses query and body against the operation's parameters; errors are keyed by parameter name.</summary>
    public static LeaseParameters Parse(IQueryCollection query, byte[]? body, OperationParameters operation, ref RequestErrors? errors)
    {
        var parameters = default(LeaseParameters);
        var seen = body is null ? null : new HashSet<string>(StringComparer.Ordinal);   // only a body can repeat a query parameter

        // The usual request names only its operation's parameters: look those up (an array, so its foreach allocates nothing)
        // instead of enumerating the query, whose enumerator is allocated on every request. Anything else goes through the loop that reports unknowns.
        var known = 0;
        foreach (var parameter in operation.Parameters)
        {
            if (query.TryGetValue(parameter.Name, out var values))
            {
                known++;
                seen?.Add(parameter.Name);
                Take(parameter, values, ref parameters, ref errors);
            }
        }

        if (known != query.Count)
        {
            foreach (var (name, _) in query)
            {
                if (operation.Find(name) is null)
                {
                    RequestErrors.Add(ref errors, name, Unknown(name, operation));
                }
            }
        }

        if (body is not null)
        {
            ParseBody(body, operation, seen!, ref parameters, ref errors);
        }

        return parameters;
    }

    private static void Take(LeaseParameter parameter, StringValues values, ref LeaseParameters parameters, ref RequestErrors? errors)
    {
        if (values.Count != 1)
        {
            RequestErrors.Add(ref errors, parameter.Name, $"'{parameter.Name}' is given {values.Count} times; give it once.");
            return;
        }

        var text = values[0] ?? string.Empty;
        if (parameter.Kind == ParameterKind.Text)
        {
            parameters = TakeText(parameter, text, parameters, ref errors);
        }
        else if (ParseInteger(parameter, text, ref errors) is long number)
        {
            parameters = parameters.With(parameter.Field, number);
        }
    }

    private static void ParseBody(byte[] body, OperationParameters operation, HashSet<string> seen, ref LeaseParameters parameters, ref RequestErrors? errors)
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
                RequestErrors.Add(ref errors, Body, "The body must be a JSON object such as {\"ttlMs\":5000}.");
                return;
            }

            var inBody = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (TryGetString(ref reader) is not { } name)
                {
                    RequestErrors.Add(ref errors, Body, "A member name is not valid text: " + BadText);
                    reader.Read();
                    reader.Skip();
                    continue;
                }

                reader.Read();
                if (operation.Find(name) is not { } parameter)
                {
                    RequestErrors.Add(ref errors, name, Unknown(name, operation));
                    reader.Skip();
                    continue;
                }

                if (!inBody.Add(name))
                {
                    RequestErrors.Add(ref errors, name, $"'{name}' appears twice in the body; give it once.");
                    reader.Skip();
                    continue;
                }

                if (reader.TokenType == JsonTokenType.Null)
                {
                    continue;
                }

                if (seen.Contains(name))
                {
                    RequestErrors.Add(ref errors, name, $"'{name}' is given both in the query and in the body; give it once.");
                    reader.Skip();
                    continue;
                }

                if (parameter.Kind == ParameterKind.Text)
                {
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        RequestErrors.Add(ref errors, name, $"'{name}' must be a string.");
                        reader.Skip();
                        continue;
                    }

                    if (TryGetString(ref reader) is { } text)
                    {
                        parameters = TakeText(parameter, text, parameters, ref errors);
                    }
                    else
                    {
                        RequestErrors.Add(ref errors, name, $"'{name}' is not valid text: " + BadText);
                    }
                }
                else if (reader.TokenType != JsonTokenType.Number)
                {
                    RequestErrors.Add(ref errors, name, $"'{name}' must be a JSON number that is a whole number{Unit(parameter)}, not a {Describe(reader.TokenType)}.");
                    reader.Skip();
                }
                else if (ParseInteger(parameter, Encoding.UTF8.GetString(reader.ValueSpan), ref errors) is long number)
                {
                    parameters = parameters.With(parameter.Field, number);
                }
            }

            if (reader.Read())
            {
                RequestErrors.Add(ref errors, Body, "The body holds more than one JSON value.");
            }
        }
        catch (JsonException)
        {
            RequestErrors.Add(ref errors, Body, "The body is not valid JSON.");
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

    private static long? ParseInteger(LeaseParameter parameter, string text, ref RequestErrors? errors)
    {
        var digits = text.StartsWith('-') ? text.AsSpan(1) : text.AsSpan();
        if (digits.Length == 0 || digits.ContainsAnyExceptInRange('0', '9')
            || !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            var example = parameter.Kind == ParameterKind.Count ? "5" : "5000";
            RequestErrors.Add(ref errors, parameter.Name, $"'{parameter.Name}' must be a plain whole number{Unit(parameter)} (digits only, such as {example}).");
            return null;
        }

        return value;
    }

    private static string Unit(LeaseParameter parameter) => parameter.Kind == ParameterKind.Milliseconds ? " of milliseconds" : string.Empty;

    private static LeaseParameters TakeText(LeaseParameter parameter, string text, LeaseParameters parameters, ref RequestErrors? errors) =>
        parameter.Rule is not { } rule || rule(text, ref errors) ? parameters.With(parameter.Field, text) : parameters;

    // JSON over a network is UTF-8 (RFC 8259): a body declared in another charset is one this service cannot read.
    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (media.MediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.MediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
        && (media.Charset.Length == 0
            || HeaderUtilities.RemoveQuotes(media.Charset).Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            || HeaderUtilities.RemoveQuotes(media.Charset).Equals("utf8", StringComparison.OrdinalIgnoreCase));

    private static string Unknown(string name, OperationParameters operation) =>
        operation.Parameters.Length == 0
            ? $"Unknown parameter '{name}': this endpoint takes no parameters."
            : $"Unknown parameter '{name}': this endpoint takes {string.Join(", ", operation.Parameters.Select(a => $"'{a.Name}'"))}.";

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "string",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.StartArray => "array",
        JsonTokenType.StartObject => "object",
        _ => token.ToString().ToLowerInvariant(),
    };
}
