using LockService.Bench.Http;
using LockService.Bench.Service;

namespace LockService.Bench;

/// <summary>What every mode needs: the options, the shared client, the probed instances and the run's key prefix.</summary>
internal sealed class BenchContext : IDisposable
{
    private BenchContext(BenchOptions options, LockClient client, string runPrefix, ServiceInfo service, ServiceInfo? service2)
    {
        Options = options;
        Client = client;
        RunPrefix = runPrefix;
        Service = service;
        Service2 = service2;
    }

    public BenchOptions Options { get; }

    public LockClient Client { get; }

    /// <summary>Prefix of every key of this run, so runs never meet each other's locks.</summary>
    public string RunPrefix { get; }

    public ServiceInfo Service { get; }

    /// <summary>The --url2 instance, when given.</summary>
    public ServiceInfo? Service2 { get; }

    public TimeSpan RequestTimeout => Options.Timeout;

    /// <summary>A waiting acquire may take its whole waitMs before the server answers; the timeout comes on top.</summary>
    public TimeSpan WaitingTimeout => TimeSpan.FromMilliseconds(Options.WaitMs) + Options.Timeout;

    public static async Task<BenchContext> CreateAsync(BenchOptions options, int maxConnections)
    {
        string runPrefix = $"bench-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray().AsSpan(0, 4))}-";
        var client = new LockClient(maxConnections, options.ApiKey);
        try
        {
            var service = await ServiceProbe.ProbeAsync(client, new LockUrls(options.Url, options.Limit, options.RwMode), runPrefix, options.Timeout);
            var service2 = options.Url2 is null ? null : await ServiceProbe.ProbeAsync(client, new LockUrls(options.Url2, options.Limit, options.RwMode), runPrefix, options.Timeout);
            return new BenchContext(options, client, runPrefix, service, service2);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>A progress line on stderr, so that stdout holds only the report.</summary>
    public void Progress(string message)
    {
        if (!Options.JsonOnly)
        {
            Console.Error.WriteLine(message);
        }
    }

    public void Dispose() => Client.Dispose();
}
