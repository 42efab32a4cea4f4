using System.Diagnostics;
using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// A real Sentinel setup from the redis-server binary, for one test class: a master, one replica of it and one
/// Sentinel watching them (quorum 1, so a single Sentinel may fail over). The service reaches it as
/// <c>127.0.0.1:&lt;sentinel&gt;,serviceName=mymaster</c>. Every process is killed when the class is done.
/// </summary>
public sealed class SentinelFixture : IAsyncLifetime
{
    public const string ServiceName = "mymaster";

    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(20);
    private readonly string _directory = Directory.CreateTempSubdirectory("lockservice-sentinel-").FullName;
    private readonly Dictionary<int, ConnectionMultiplexer> _direct = [];
    private Process? _sentinel;

    public RedisServer Master { get; private set; } = null!;

    public RedisServer Replica { get; private set; } = null!;

    public int SentinelPort { get; } = RedisServer.FreePort();

    /// <summary>The service's <c>Redis:ConnectionString</c>: the Sentinel and the name of what it watches.</summary>
    public string ConnectionString => $"127.0.0.1:{SentinelPort},serviceName={ServiceName}";

    /// <summary>An admin connection to the Sentinel itself.</summary>
    public IServer Sentinel { get; private set; } = null!;

    private ConnectionMultiplexer SentinelConnection { get; set; } = null!;

    public async Task InitializeAsync()
    {
        // Without redis-server every test of the class is skipped (RedisServerFact): nothing to start, nothing to fail.
        if (!RedisServer.Available)
        {
            return;
        }

        // A master streams a full sync to a replica at once instead of waiting 5 s for more replicas to join;
        // the replica too, for when a failover makes it the master of the old one.
        Master = await RedisServer.StartNewAsync("--repl-diskless-sync-delay", "0");
        Replica = await RedisServer.StartNewAsync(
            "--replicaof", "127.0.0.1", Master.Port.ToString(CultureInfo.InvariantCulture), "--repl-diskless-sync-delay", "0");

        // The Sentinel learns of the replica from the master's INFO, which it reads at once when it starts and
        // then only every 10 s: the replica is in sync before the Sentinel starts.
        await RedisServer.WaitUntilAsync(
            async () => (await InfoAsync(Replica)).Contains("master_link_status:up", StringComparison.Ordinal)
                && (await InfoAsync(Master)).Contains("connected_slaves:1", StringComparison.Ordinal),
            SetupTimeout,
            "the replica in sync with the master");

        StartSentinel();
        var options = new ConfigurationOptions
        {
            EndPoints = { { IPAddress.Loopback, SentinelPort } },
            CommandMap = CommandMap.Sentinel,
            AllowAdmin = true,
            AbortOnConnectFail = false,
            ConnectTimeout = 1000,
        };
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                SentinelConnection ??= await ConnectionMultiplexer.SentinelConnectAsync(options);
                Sentinel = SentinelConnection.GetServer(IPAddress.Loopback, SentinelPort);
                if (!Sentinel.IsConnected)
                {
                    return false;
                }

                var replicas = await Sentinel.SentinelReplicasAsync(ServiceName);
                return replicas.Length == 1 && replicas[0].Any(p => p is { Key: "flags", Value: "slave" })
                    && replicas[0].Any(p => p is { Key: "master-link-status", Value: "ok" });
            },
            SetupTimeout,
            "the Sentinel to know the master and its replica");
    }

    public async Task DisposeAsync()
    {
        foreach (var connection in _direct.Values)
        {
            await connection.DisposeAsync();
        }

        if (SentinelConnection is not null)
        {
            await SentinelConnection.DisposeAsync();
        }

        KillSentinel();
        if (_sentinel is not null)
        {
            await _sentinel.WaitForExitAsync();
            _sentinel.Dispose();
        }

        await Task.WhenAll(new[] { Master, Replica }.Where(s => s is not null).Select(s => s.DisposeAsync().AsTask()));
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A log file still being closed: the temp directory is cleaned by the OS later.
        }
    }

    /// <summary>The port of the master as the Sentinel sees it now.</summary>
    public async Task<int?> MasterPortAsync()
    {
        var endPoint = await Sentinel.SentinelGetMasterAddressByNameAsync(ServiceName);
        return endPoint switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            _ => null,
        };
    }

    /// <summary>A plain connection to one of the two data nodes, not following any failover.</summary>
    public async Task<IServer> DirectAsync(RedisServer node)
    {
        ConnectionMultiplexer? connection;
        lock (_direct)
        {
            _direct.TryGetValue(node.Port, out connection);
        }

        if (connection is null)
        {
            var options = ConfigurationOptions.Parse(node.ConnectionString);
            options.AllowAdmin = true;
            connection = await ConnectionMultiplexer.ConnectAsync(options);
            lock (_direct)
            {
                if (!_direct.TryAdd(node.Port, connection))
                {
                    connection.Dispose();
                    connection = _direct[node.Port];
                }
            }
        }

        return connection.GetServer(node.ConnectionString);
    }

    /// <summary>INFO replication of a data node, as text.</summary>
    public async Task<string> InfoAsync(RedisServer node) => await (await DirectAsync(node)).InfoRawAsync("replication") ?? string.Empty;

    private void StartSentinel()
    {
        // Sentinel rewrites its configuration file (it records what it learns), so the file is ours and writable.
        var conf = Path.Combine(_directory, "sentinel.conf");
        File.WriteAllText(conf, string.Join('\n',
        [
            $"port {SentinelPort}",
            "bind 127.0.0.1",
            $"dir {_directory}",
            $"logfile {Path.Combine(_directory, "sentinel.log")}",
            $"sentinel monitor {ServiceName} 127.0.0.1 {Master.Port} 1",

            // A master silent for a second is down; a stuck failover is retried after 5 s. Both short so tests are quick.
            $"sentinel down-after-milliseconds {ServiceName} 1000",
            $"sentinel failover-timeout {ServiceName} 5000",
            string.Empty,
        ]));

        var info = new ProcessStartInfo("redis-server") { UseShellExecute = false };
        info.ArgumentList.Add(conf);
        info.ArgumentList.Add("--sentinel");
        _sentinel = Process.Start(info) ?? throw new InvalidOperationException("redis-server --sentinel did not start.");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillSentinel();
    }

    private void KillSentinel()
    {
        try
        {
            if (_sentinel is { HasExited: false })
            {
                _sentinel.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }
}
