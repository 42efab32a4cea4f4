using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Elections;

/// <summary>One event of an observe stream, and when the client read it.</summary>
public sealed record ObservedEvent(string Name, string? Id, string Data, long At)
{
    public JsonElement Json => JsonDocument.Parse(Data).RootElement;

    public long? Term => Name == "leader" ? Json.GetProperty("term").GetInt64() : null;

    public string? Value => Name == "leader" ? Json.GetProperty("value").GetString() : null;
}

/// <summary>
/// An observe stream (<c>GET /elections/{name}</c> with <c>Accept: text/event-stream</c>) read as a client would, line by
/// line, every event kept with the time it was read (<see cref="Stopwatch"/> ticks); comments are counted.
/// </summary>
public sealed class ElectionEvents : IAsyncDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly HttpResponseMessage _response;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<ObservedEvent> _events = new();
    private readonly ConcurrentQueue<string> _comments = new();
    private readonly Task _reader;

    private ElectionEvents(HttpResponseMessage response)
    {
        _response = response;
        _reader = Task.Run(ReadAsync);
    }

    public HttpStatusCode Status => _response.StatusCode;

    public IReadOnlyList<ObservedEvent> Events => [.. _events];

    public IReadOnlyList<string> Comments => [.. _comments];

    public ObservedEvent? Last => _events.LastOrDefault();

    public static async Task<ElectionEvents> OpenAsync(HttpClient http, string name, string? lastEventId = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/elections/{name}");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Bound);
        return new ElectionEvents(response);
    }

    /// <summary>Waits until an event read after <paramref name="after"/> (an index into <see cref="Events"/>) matches.</summary>
    public async Task<ObservedEvent> WaitForAsync(Func<ObservedEvent, bool> match, string what, int after = -1)
    {
        ObservedEvent? found = null;
        await RedisServer.WaitUntilAsync(
            () =>
            {
                found = _events.Skip(after + 1).FirstOrDefault(match);
                return Task.FromResult(found is not null || _reader.IsCompleted);
            },
            Bound,
            what);
        return found ?? throw new InvalidOperationException($"The stream ended before {what}: {_reader.Exception?.InnerException?.Message}");
    }

    /// <summary>Waits until the last event read matches (the observer's view is that state).</summary>
    public async Task<ObservedEvent> WaitForLastAsync(Func<ObservedEvent, bool> match, string what)
    {
        await RedisServer.WaitUntilAsync(() => Task.FromResult(_events.LastOrDefault() is { } last && match(last)), Bound, what);
        return _events.Last();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _response.Dispose();
        try
        {
            await _reader;
        }
        catch (Exception)
        {
            // The connection was closed under the reader.
        }

        _stop.Dispose();
    }

    private async Task ReadAsync()
    {
        if (_response.StatusCode != HttpStatusCode.OK)
        {
            return;
        }

        using var reader = new StreamReader(await _response.Content.ReadAsStreamAsync(_stop.Token), Encoding.UTF8);
        string? name = null, id = null, data = null;
        while (await reader.ReadLineAsync(_stop.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (name is not null)
                {
                    _events.Enqueue(new ObservedEvent(name, id, data ?? string.Empty, Stopwatch.GetTimestamp()));
                }

                (name, id, data) = (null, null, null);
            }
            else if (line.StartsWith(':'))
            {
                _comments.Enqueue(line);
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = line["id: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line["data: ".Length..];
            }
        }
    }
}
