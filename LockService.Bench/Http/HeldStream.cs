using System.Net.Http.Headers;
using System.Text;

namespace LockService.Bench.Http;

/// <summary>What one stream said: an event with its data, or a comment line (a renewal).</summary>
internal readonly record struct StreamItem(string? Event, string Data)
{
    public bool IsComment => Event is null;
}

/// <summary>
/// A lock held by a Server-Sent Events stream (<c>POST /locks/{key}</c> with <c>Accept: text/event-stream</c>):
/// open until <c>event: acquired</c>, then read renewal comments and <c>event: lost</c>. Disposing it closes the
/// connection, which releases the lock; the client must be a <see cref="LockClient"/> made with
/// <c>closeUnfinished</c>, or the close waits for a drain. Not thread-safe.
/// </summary>
internal sealed class HeldStream : IDisposable
{
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");

    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private HeldStream(HttpResponseMessage response, StreamReader reader, string token)
    {
        _response = response;
        _reader = reader;
        Token = token;
    }

    public string Token { get; }

    /// <summary>
    /// Sends the acquire and reads up to <c>event: acquired</c>. The outcome's status is the HTTP status, or
    /// <see cref="Outcome.BadBody"/> for a 200 whose first event is not <c>acquired</c> with a token; its Finished is
    /// when the acquired event was read. The stream is null unless the status is 200.
    /// </summary>
    public static async Task<(Outcome Outcome, HeldStream? Stream)> OpenAsync(HttpClient http, Uri uri, TimeSpan timeout, CancellationToken cancel)
    {
        long started = Outcome.Now();
        long headersAt = 0;
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeoutSource.CancelAfter(timeout);
        HttpResponseMessage? response = null;
        StreamReader? reader = null;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, uri);
            request.Headers.Accept.Add(EventStream);
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeoutSource.Token).ConfigureAwait(false);
            headersAt = Outcome.Now();
            int status = (int)response.StatusCode;
            if (status == 200)
            {
                reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeoutSource.Token).ConfigureAwait(false), Encoding.UTF8);
                var first = await ReadItemAsync(reader, timeoutSource.Token).ConfigureAwait(false);
                string? token = first is { Event: "acquired" } acquired ? LockJson.ReadString(Encoding.UTF8.GetBytes(acquired.Data), "token"u8) : null;
                if (token is not null && LockJson.IsToken(token))
                {
                    var stream = new HeldStream(response, reader, token);
                    response = null;
                    reader = null;
                    return (new Outcome(200, started, headersAt, Outcome.Now()), stream);
                }

                status = Outcome.BadBody;
            }

            return (new Outcome(status, started, headersAt, Outcome.Now()), null);
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
        {
            int status = e is not OperationCanceledException ? Outcome.Transport : cancel.IsCancellationRequested ? Outcome.Canceled : Outcome.Timeout;
            long now = Outcome.Now();
            return (new Outcome(status, started, headersAt == 0 ? now : headersAt, now), null);
        }
        finally
        {
            reader?.Dispose();
            response?.Dispose();
        }
    }

    /// <summary>The next event or comment; null when the service ended the stream.</summary>
    public Task<StreamItem?> ReadAsync(CancellationToken cancel) => ReadItemAsync(_reader, cancel);

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
    }

    /// <summary>Reads lines until a comment or a complete event (a blank line after <c>event:</c>/<c>data:</c> lines).</summary>
    private static async Task<StreamItem?> ReadItemAsync(StreamReader reader, CancellationToken cancel)
    {
        string? name = null;
        StringBuilder? data = null;
        while (await reader.ReadLineAsync(cancel).ConfigureAwait(false) is string line)
        {
            if (line.Length == 0)
            {
                if (name is not null || data is not null)
                {
                    return new StreamItem(name ?? "message", data?.ToString() ?? "");
                }
            }
            else if (line[0] == ':')
            {
                return new StreamItem(null, line[1..].TrimStart());
            }
            else if (Field(line, "event") is string value)
            {
                name = value;
            }
            else if (Field(line, "data") is string more)
            {
                data = data is null ? new StringBuilder(more) : data.Append('\n').Append(more);
            }
        }

        return null;
    }

    /// <summary>The value of a <c>field: value</c> line (one space after the colon is not part of it).</summary>
    private static string? Field(string line, string field) =>
        line.Length > field.Length && line[field.Length] == ':' && line.StartsWith(field, StringComparison.Ordinal)
            ? line[(field.Length + 1)..] is [' ', .. var rest] ? rest : line[(field.Length + 1)..]
            : null;
}
