using System.Diagnostics;
using System.Net;
using System.Text;

namespace LockService.Tests.Infrastructure;

/// <summary>An acquire held by a Server-Sent Events stream, read line by line as a client would.</summary>
public sealed class LeaseEvents : IAsyncDisposable
{
    private static readonly TimeSpan ReadBound = TimeSpan.FromSeconds(15);
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private LeaseEvents(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public HttpStatusCode Status => _response.StatusCode;

    public string? MediaType => _response.Content.Headers.ContentType?.MediaType;

    /// <summary>Opens a stream holding <paramref name="key"/> of <paramref name="resource"/> (<c>locks</c> or <c>semaphores</c>).</summary>
    public static async Task<LeaseEvents> OpenAsync(HttpClient http, string key, string query, string resource = "locks")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/{resource}/{key}?{query}");
        request.Headers.Accept.ParseAdd("text/event-stream");
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return new LeaseEvents(response, new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8));
    }

    /// <summary>
    /// A client that closes a stream's connection when the stream is disposed, as curl or a browser does. By default
    /// SocketsHttpHandler drains an unfinished response for up to 2 s to reuse the connection, which a stream that
    /// never ends turns into a 2 s delay before the close.
    /// </summary>
    public static HttpClient ClientFor(Uri baseAddress) =>
        new(new SocketsHttpHandler { MaxResponseDrainSize = 0, MaxConnectionsPerServer = int.MaxValue }) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };

    public string? Header(string name) => _response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    /// <summary>The next event (comments skipped), bounded in time.</summary>
    public async Task<(string Name, string Data)> NextEventAsync()
    {
        string? name = null, data = null;
        while (await ReadLineAsync() is { } line)
        {
            if (line.Length == 0 && name is not null)
            {
                return (name, data ?? string.Empty);
            }

            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line["data: ".Length..];
            }
        }

        throw new InvalidOperationException("The stream ended before the next event.");
    }

    /// <summary>The next comment line, bounded in time.</summary>
    public async Task<string> NextCommentAsync()
    {
        while (await ReadLineAsync() is { } line)
        {
            if (line.StartsWith(':'))
            {
                return line;
            }
        }

        throw new InvalidOperationException("The stream ended before the next comment.");
    }

    /// <summary>True when the server ends the stream (within the bound).</summary>
    public async Task<bool> EndedAsync()
    {
        while (await ReadLineAsync() is not null)
        {
        }

        return true;
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task<string?> ReadLineAsync() => await _reader.ReadLineAsync().WaitAsync(ReadBound);
}

/// <summary>curl as a real client process holding a lock by a stream, for signals.</summary>
public static class Curl
{
    public static bool Available => File.Exists("/usr/bin/curl");

    public static Process Stream(Uri url)
    {
        var info = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-sSN", "-X", "POST", "-H", "Accept: text/event-stream", url.ToString() })
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        return process;
    }

    public static void Signal(Process process, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }
}
