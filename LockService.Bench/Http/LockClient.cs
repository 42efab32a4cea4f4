using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace LockService.Bench.Http;

/// <summary>One pooled HttpClient; counts the connections it opens so that modes can tell when all are in place.</summary>
internal sealed class LockClient : IDisposable
{
    private static string? s_lastConnectError;
    private long _connectionsOpened;

    /// <param name="closeUnfinished">
    /// Disposing a response that is not read to its end closes its connection at once (lock streams: the
    /// close is the release), rather than draining it for up to 2 s first.
    /// </param>
    public LockClient(int maxConnections, string? apiKey, bool closeUnfinished = false)
    {
        var handler = new SocketsHttpHandler
        {
            // HTTP/1.1 carries one request per connection at a time: every concurrent request,
            // waiting ones included, needs its own connection.
            MaxConnectionsPerServer = maxConnections,
            // Connections live for the whole run: recycling them would put connects into the latencies.
            PooledConnectionLifetime = System.Threading.Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectCallback = ConnectAsync,
        };
        if (closeUnfinished)
        {
            handler.MaxResponseDrainSize = 0;
        }

        Http = new HttpClient(handler, disposeHandler: true) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        if (apiKey is not null)
        {
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
    }

    public HttpClient Http { get; }

    public long ConnectionsOpened => Interlocked.Read(ref _connectionsOpened);

    /// <summary>The last connect failure of any client, for the error message of a run that had transport errors.</summary>
    public static string? LastConnectError => Volatile.Read(ref s_lastConnectError);

    public void Dispose() => Http.Dispose();

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        Socket? socket = null;
        try
        {
            socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _connectionsOpened);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (SocketException e)
        {
            socket?.Dispose();
            string message = e.SocketErrorCode == SocketError.TooManyOpenSockets
                ? $"{e.Message}: the open-file limit (ulimit -n) of this process is too low for this many connections"
                : $"{e.Message} ({context.DnsEndPoint.Host}:{context.DnsEndPoint.Port})";
            Volatile.Write(ref s_lastConnectError, message);
            throw;
        }
        catch
        {
            socket?.Dispose();
            throw;
        }
    }
}
