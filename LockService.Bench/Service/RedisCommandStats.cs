using System.Globalization;
using StackExchange.Redis;

namespace LockService.Bench.Service;

/// <summary>Snapshots of Redis INFO commandstats (calls per command, summed over the primaries).</summary>
internal sealed class RedisCommandStats : IAsyncDisposable
{
    /// <summary>
    /// Commands a client sends itself and Lua never does (or, for ping, practically never): their calls
    /// approximate the round trips the service made. commandstats does not tell top-level calls from calls
    /// inside scripts, so a service that sends plain GET/SET outside scripts is under-counted here.
    /// </summary>
    public static readonly string[] TopLevelCommands =
    [
        "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro",
        "subscribe", "ssubscribe", "psubscribe", "unsubscribe", "sunsubscribe", "punsubscribe", "ping",
    ];

    public const string Definition =
        "topLevel = calls of eval, evalsha, eval_ro, evalsha_ro, fcall, fcall_ro, (s|p)subscribe, (s|p)unsubscribe and ping " +
        "(what a client sends itself; commands run inside scripts excluded); total = calls of every command, " +
        "those run inside scripts included, minus INFO; both divided by acquisitions (201s) in the window";

    private readonly ConnectionMultiplexer _mux;

    private RedisCommandStats(ConnectionMultiplexer mux) => _mux = mux;

    public static async Task<RedisCommandStats> ConnectAsync(string configuration)
    {
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException e)
        {
            throw new SetupException($"--redis '{configuration}': {e.Message}");
        }

        options.AllowAdmin = true; // INFO commandstats and CONFIG need an admin connection
        options.AbortOnConnectFail = true;
        options.ClientName = "lockservice-bench";
        // This connection must barely show in the counts it takes: no tie-breaker reads and no
        // configuration-change subscription.
        options.TieBreaker = "";
        options.ConfigurationChannel = "";
        try
        {
            var mux = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
            return new RedisCommandStats(mux);
        }
        catch (RedisConnectionException e)
        {
            // The client's message goes on about abortConnect, which is no advice for a benchmark: keep its first sentence.
            string reason = e.Message.Split(". ", 2)[0];
            throw new SetupException($"cannot reach Redis at '{configuration}' (--redis): {reason}");
        }
    }

    public async Task<Dictionary<string, long>> SnapshotAsync()
    {
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var server in _mux.GetServers())
        {
            if (!server.IsConnected || server.IsReplica)
            {
                continue;
            }

            string? raw = await server.InfoRawAsync("commandstats").ConfigureAwait(false);
            Parse(raw ?? "", calls);
        }

        return calls;
    }

    /// <summary>Positive call deltas per command, INFO itself left out.</summary>
    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after)
    {
        var delta = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (command, calls) in after)
        {
            long d = calls - before.GetValueOrDefault(command);
            if (d > 0 && command != "info")
            {
                delta[command] = d;
            }
        }

        return delta;
    }

    public static long TopLevel(Dictionary<string, long> delta) => TopLevelCommands.Sum(c => delta.GetValueOrDefault(c));

    public async ValueTask DisposeAsync() => await _mux.DisposeAsync().ConfigureAwait(false);

    // cmdstat_evalsha:calls=123,usec=456,usec_per_call=3.71,rejected_calls=0,failed_calls=0
    private static void Parse(string raw, Dictionary<string, long> calls)
    {
        foreach (string line in raw.Split('\n'))
        {
            if (!line.StartsWith("cmdstat_", StringComparison.Ordinal))
            {
                continue;
            }

            int colon = line.IndexOf(':', StringComparison.Ordinal);
            int start = line.IndexOf("calls=", StringComparison.Ordinal);
            if (colon < 0 || start < 0)
            {
                continue;
            }

            start += "calls=".Length;
            int end = line.IndexOf(',', start);
            var number = end < 0 ? line.AsSpan(start).TrimEnd() : line.AsSpan(start, end - start);
            if (long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            {
                string command = line["cmdstat_".Length..colon];
                calls[command] = calls.GetValueOrDefault(command) + value;
            }
        }
    }
}
