using System.Globalization;
using System.Net;
using System.Text.Json;

namespace LockService.Client;

/// <summary>An RFC 9457 problem answer as the contract shapes it, read leniently (a proxy's HTML 502 is a problem too).</summary>
internal sealed record Problem(HttpStatusCode Status, string? Code, string? Title, string? Detail, string? Reason, TimeSpan? RetryAfter, IReadOnlyDictionary<string, string[]> Errors)
{
    public static async Task<Problem> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string? code = null, title = null, detail = null, reason = null;
        TimeSpan? retryAfter = response.Headers.RetryAfter?.Delta;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        JsonElement? leader = null;
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.ValueKind == JsonValueKind.Object)
            {
                var root = json.RootElement;
                code = String(root, "code");
                title = String(root, "title");
                detail = String(root, "detail");
                reason = String(root, "reason");
                if (root.TryGetProperty("leader", out var led) && led.ValueKind == JsonValueKind.Object)
                {
                    leader = led.Clone();
                }

                if (root.TryGetProperty("retryAfterMs", out var ms) && ms.TryGetInt64(out var retryMs))
                {
                    retryAfter = TimeSpan.FromMilliseconds(retryMs);
                }

                if (root.TryGetProperty("errors", out var list) && list.ValueKind == JsonValueKind.Object)
                {
                    foreach (var error in list.EnumerateObject())
                    {
                        errors[error.Name] = error.Value.ValueKind == JsonValueKind.Array
                            ? [.. error.Value.EnumerateArray().Select(e => e.ToString())]
                            : [error.Value.ToString()];
                    }
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's page): the status alone speaks.
        }

        return new Problem(response.StatusCode, code, title, detail, reason, retryAfter, errors) { Leader = leader };
    }

    /// <summary>The member <c>leader</c> of a <c>409 election_led</c>: <c>{"term","value","acquiredAt","expiresAt"}</c>.</summary>
    public JsonElement? Leader { get; init; }

    /// <summary>
    /// The leader of election <paramref name="name"/> that <see cref="Leader"/> describes, its remaining TTL the
    /// <c>retryAfterMs</c> (when its term runs out unless extended); null without one, or when it is not that shape.
    /// </summary>
    public LeaderInfo? LeaderOf(string name)
    {
        if (Leader is not { } leader
            || !leader.TryGetProperty("term", out var term) || !term.TryGetInt64(out var termValue)
            || !leader.TryGetProperty("acquiredAt", out var acquired) || !acquired.TryGetDateTimeOffset(out var acquiredAt)
            || !leader.TryGetProperty("expiresAt", out var expires) || !expires.TryGetDateTimeOffset(out var expiresAt))
        {
            return null;
        }

        var value = leader.TryGetProperty("value", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        return new LeaderInfo(name, termValue, value, acquiredAt, expiresAt, (long)(RetryAfter ?? TimeSpan.Zero).TotalMilliseconds);
    }

    /// <summary>One readable line: status, code, detail and the parameter errors.</summary>
    public string Message
    {
        get
        {
            var line = $"{(int)Status} {Code ?? Status.ToString()}: {Detail ?? Title ?? "no detail"}";
            if (Errors.Count > 0)
            {
                line += " (" + string.Join("; ", Errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")) + ")";
            }

            if (RetryAfter is { } after && Status != HttpStatusCode.Conflict)
            {
                line += string.Create(CultureInfo.InvariantCulture, $" (retry after {after.TotalSeconds:0.###} s)");
            }

            return line;
        }
    }

    public LockServiceException ToException() => Status switch
    {
        HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new LockServiceAuthException(Status, Code, Message),
        HttpStatusCode.TooManyRequests => new LockServiceThrottledException(Code, Message, RetryAfter),
        HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout =>
            new LockServiceUnavailableException(Status, Code, Message, RetryAfter),
        _ => new LockServiceException(Status, Code, Message) { Errors = Errors },
    };

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
