using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// A real redis-server process on a free loopback port with its own temp directory, which a test may stop
/// and start again on the same port (outage tests). Killed when disposed and when the test process exits.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    /// <summary>
    /// Set to 1 to run the tests as on a machine without redis-server (only Docker): the tests that start Redis
    /// processes of their own are then skipped, and the shared Redis is LOCKSERVICE_TEST_REDIS or Testcontainers.
    /// </summary>
    public const string NoRedisServerVariable = "LOCKSERVICE_TEST_NO_REDIS_SERVER";

    private static readonly Lazy<string?> Binary = new(() =>
        Environment.GetEnvironmentVariable(NoRedisServerVariable) == "1" ? null : FindOnPath("redis-server"));
    private readonly string _directory = Directory.CreateTempSubdirectory("lockservice-redis-").FullName;
    private readonly string[] _extraArguments;
    private Process? _process;

    private RedisServer(int port, string[] extraArguments)
    {
        Port = port;
        _extraArguments = extraArguments;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill();
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>redis-server is on PATH (and not switched off by <see cref="NoRedisServerVariable"/>).</summary>
    public static bool Available => Binary.Value is not null;

    /// <summary>Starts a new server; extra arguments go to redis-server (for example cluster or replica settings).</summary>
    public static async Task<RedisServer> StartNewAsync(params string[] extraArguments)
    {
        return await StartOnFreePortsAsync(() => extraArguments);
    }

    public async Task StartAsync()
    {
        var binary = Binary.Value ?? throw new InvalidOperationException("redis-server is not on PATH.");
        var info = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = false,
            RedirectStandardError = false,
        };
        foreach (var argument in new[]
                 {
                     "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                     "--dir", _directory, "--save", "", "--appendonly", "no", "--logfile", Path.Combine(_directory, "redis.log"),
                 }.Concat(_extraArguments))
        {
            info.ArgumentList.Add(argument);
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
        var process = _process;
        await WaitUntilAsync(
            async () => process.HasExited ? throw new PortTakenException(Port, LogTail()) : await PingsAsync(),
            TimeSpan.FromSeconds(15),
            $"redis-server on port {Port} did not answer PING");
    }

    /// <summary>
    /// Starts a server on free ports, again on other ports when one was taken between being found free and being bound
    /// (the suite starts many processes and connections at once). <paramref name="arguments"/> may ask for more free ports.
    /// </summary>
    public static async Task<RedisServer> StartOnFreePortsAsync(Func<string[]> arguments)
    {
        for (var attempt = 1; ; attempt++)
        {
            var server = new RedisServer(FreePort(), arguments());
            try
            {
                await server.StartAsync();
                return server;
            }
            catch (PortTakenException) when (attempt < 5)
            {
                await server.DisposeAsync();
            }
        }
    }

    private string LogTail()
    {
        var log = Path.Combine(_directory, "redis.log");
        return File.Exists(log) ? string.Join(" | ", File.ReadLines(log).TakeLast(3)) : "(no log)";
    }

    /// <summary>redis-server exited at start, typically because a port it was given was taken meanwhile.</summary>
    public sealed class PortTakenException(int port, string log) : Exception($"redis-server on port {port} exited at start: {log}");

    /// <summary>Kills the server (an outage, not a clean shutdown) and waits until the port refuses connections.</summary>
    public async Task StopAsync()
    {
        Kill();
        if (_process is not null)
        {
            await _process.WaitForExitAsync();
        }

        await WaitUntilAsync(async () => !await PingsAsync(), TimeSpan.FromSeconds(10), $"redis-server on port {Port} still answers");
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        if (_process is not null)
        {
            await _process.WaitForExitAsync();
            _process.Dispose();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A log file still being closed: the temp directory is cleaned by the OS later.
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"{what} within {timeout.TotalSeconds:0.#} s.");
            }

            await Task.Delay(20);
        }
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            var options = ConfigurationOptions.Parse(ConnectionString);
            options.ConnectTimeout = 500;
            options.AbortOnConnectFail = true;
            await using var connection = await ConnectionMultiplexer.ConnectAsync(options);
            await connection.GetDatabase().PingAsync();
            return true;
        }
        catch (RedisConnectionException)
        {
            return false;
        }
    }

    private void Kill()
    {
        try
        {
            if (_process is { HasExited: false })
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>The first file named <paramref name="name"/> in the directories of PATH, or null.</summary>
    internal static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
