using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// A real Redis Cluster of three masters (no replicas) from the redis-server binary, for one test class: three
/// cluster-enabled nodes on free ports joined by <c>redis-cli --cluster create</c>, with the service running in
/// the test server over all three. Every process is killed when the class is done.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    // Setup is a few seconds (redis-cli polls the join once a second); more means something is wrong.
    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(30);
    private readonly List<RedisServer> _nodes = [];

    public IReadOnlyList<RedisServer> Nodes => _nodes;

    /// <summary>All three nodes, as the service's <c>Redis:ConnectionString</c>.</summary>
    public string ConnectionString => string.Join(",", _nodes.Select(n => n.ConnectionString));

    /// <summary>A cluster-aware admin connection for tests that look at Redis itself.</summary>
    public IConnectionMultiplexer Admin { get; private set; } = null!;

    public LockServiceFactory Factory { get; private set; } = null!;

    public LockClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Without redis-server every test of the class is skipped (RedisServerFact, TopologyFact): nothing to start, nothing to fail.
        if (!RedisServer.Available)
        {
            return;
        }

        // The cluster bus port is set explicitly: the default (port + 10000) may be taken, or above 65535.
        var nodes = Enumerable.Range(0, 3).Select(_ => RedisServer.StartOnFreePortsAsync(() =>
        [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", RedisServer.FreePort().ToString(CultureInfo.InvariantCulture),
            "--cluster-node-timeout", "2000",
        ]));
        _nodes.AddRange(await Task.WhenAll(nodes));

        await RunAsync(
            "redis-cli",
            ["--cluster", "create", .. _nodes.Select(n => n.ConnectionString), "--cluster-replicas", "0", "--cluster-yes"],
            SetupTimeout);

        var options = ConfigurationOptions.Parse(ConnectionString);
        options.AllowAdmin = true;
        Admin = await ConnectionMultiplexer.ConnectAsync(options);
        await RedisServer.WaitUntilAsync(
            async () =>
            {
                foreach (var server in Admin.GetServers())
                {
                    var info = (string?)await server.ExecuteAsync("CLUSTER", "INFO");
                    if (info is null || !info.Contains("cluster_state:ok", StringComparison.Ordinal))
                    {
                        return false;
                    }
                }

                return Admin.GetServers().Length == 3;
            },
            SetupTimeout,
            "cluster_state:ok on all three nodes");

        Factory = new LockServiceFactory(ConnectionString);
        Client = new LockClient(Factory.CreateClient());
    }

    public async Task DisposeAsync()
    {
        if (Factory is not null)
        {
            await Factory.DisposeAsync();
        }

        if (Admin is not null)
        {
            await Admin.DisposeAsync();
        }

        await Task.WhenAll(_nodes.Select(n => n.DisposeAsync().AsTask()));
    }

    /// <summary>The master that owns <paramref name="key"/>'s slot.</summary>
    public IServer OwnerOf(string key) => Admin.GetServer((RedisKey)key);

    /// <summary>Runs a command-line tool to completion within <paramref name="timeout"/>; throws with its output when it fails.</summary>
    public static async Task<string> RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException($"{file} is not on PATH (Debian: apt-get install redis-tools).", ex);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{file} {string.Join(' ', info.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s.");
            }

            var output = await stdout + await stderr;
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{file} {string.Join(' ', info.ArgumentList)} exited with {process.ExitCode}: {output}");
            }

            return output;
        }
    }
}
