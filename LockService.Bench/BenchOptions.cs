using System.Globalization;

namespace LockService.Bench;

internal enum BenchMode
{
    Cycles,
    Contended,
    Handoff,
    Waiters,
}

/// <summary>A bad command line or an unusable environment: printed as one line, exit code 2.</summary>
internal sealed class SetupException(string message) : Exception(message);

internal sealed class BenchOptions
{
    public const string Usage = """
        LockService load generator

        usage: LockService.Bench <mode> [options]

        modes
          cycles      C closed loops of acquire -> release on random keys of a large key space
          contended   C closed loops on ONE key: acquire with waitMs, release at once;
                      also Redis commands per acquisition from INFO commandstats (--redis)
          handoff     N rounds: holder holds k, a waiter waits on k, holder releases;
                      time from the DELETE's response to the waiter's 201
          waiters     W (-c) requests waiting at once on --keys keys; then drain them all

        options
          --url URL           service (default http://127.0.0.1:8080)
          --url2 URL          handoff: the waiter talks to this instance, the holder to --url
          --redis CONFIG      StackExchange.Redis configuration for contended (default 127.0.0.1:6379)
          -c, --concurrency N loops (default 50); waiters: waiting requests (default 5000)
          -d, --duration S    measured seconds for cycles and contended (default 10)
          --warmup S          unmeasured seconds before (default 2; handoff: warm-up rounds)
          -n, --rounds N      handoff rounds (default 200)
          --api-key KEY       sent as Authorization: Bearer KEY
          --json-only         print only the JSON line
          --key-space N       cycles: distinct keys (default 1000000)
          --keys N            waiters: keys to wait on (default 5)
          --ttl-ms MS         ttlMs of every acquire (default 30000)
          --wait-ms MS        waitMs of waiting acquires (default 5000; waiters 60000)
          --timeout S         per-request timeout, added to waitMs for waiting requests (default 10)
          --grace-ms MS       handoff: pause after starting the waiter (default 20)
          --shorten-ms MS     handoff: the holder cuts its TTL to MS (PATCH) instead of releasing; the
                              figure is then from the PATCH's 200 plus MS to the waiter's 201
          --settle-ms MS      waiters: pause after all connections are open when the service has
                              no lockservice_waiting_requests gauge (default 1000)
          --settle-timeout S  waiters: bound on waiting for the waiters to be in place (default 60)
          --pid PID           service process: report its peak RSS (from /proc/PID/status)

        Output: a table, then one JSON line. Exit code 0 when the run completed (errors are
        counted in the report), 2 when the service, Redis or the command line is unusable.

        """;

    public BenchMode Mode { get; private set; }

    public Uri Url { get; private set; } = new("http://127.0.0.1:8080");

    public Uri? Url2 { get; private set; }

    public string Redis { get; private set; } = "127.0.0.1:6379";

    public int Concurrency { get; private set; }

    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(10);

    public TimeSpan Warmup { get; private set; } = TimeSpan.FromSeconds(2);

    public int Rounds { get; private set; } = 200;

    public string? ApiKey { get; private set; }

    public bool JsonOnly { get; private set; }

    public int KeySpace { get; private set; } = 1_000_000;

    public int Keys { get; private set; } = 5;

    public long TtlMs { get; private set; } = 30_000;

    public long WaitMs { get; private set; }

    public TimeSpan Timeout { get; private set; } = TimeSpan.FromSeconds(10);

    public int GraceMs { get; private set; } = 20;

    public int? ShortenMs { get; private set; }

    public int SettleMs { get; private set; } = 1000;

    public TimeSpan SettleTimeout { get; private set; } = TimeSpan.FromSeconds(60);

    public int? Pid { get; private set; }

    public string ModeName => Mode.ToString().ToLowerInvariant();

    /// <summary>Parses the command line; null when help was asked for.</summary>
    public static BenchOptions? Parse(string[] args)
    {
        if (args.Length == 0)
        {
            throw new SetupException("no mode given: cycles, contended, handoff or waiters (--help for options)");
        }

        if (args[0] is "-h" or "--help" or "help")
        {
            return null;
        }

        var options = new BenchOptions
        {
            Mode = args[0] switch
            {
                "cycles" => BenchMode.Cycles,
                "contended" => BenchMode.Contended,
                "handoff" => BenchMode.Handoff,
                "waiters" => BenchMode.Waiters,
                _ => throw new SetupException($"unknown mode '{args[0]}': cycles, contended, handoff or waiters"),
            },
        };
        options.Concurrency = options.Mode == BenchMode.Waiters ? 5000 : 50;
        options.WaitMs = options.Mode == BenchMode.Waiters ? 60_000 : 5000;

        for (int i = 1; i < args.Length; i++)
        {
            string flag = args[i];
            string? inline = null;
            int eq = flag.IndexOf('=', StringComparison.Ordinal);
            if (flag.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = flag[(eq + 1)..];
                flag = flag[..eq];
            }

            if (flag is "-h" or "--help")
            {
                return null;
            }

            if (flag == "--json-only")
            {
                options.JsonOnly = true;
                continue;
            }

            string value = inline ?? (i + 1 < args.Length ? args[++i] : throw new SetupException($"{flag} needs a value"));
            switch (flag)
            {
                case "--url":
                    options.Url = ParseUrl(flag, value);
                    break;
                case "--url2":
                    options.Url2 = ParseUrl(flag, value);
                    break;
                case "--redis":
                    options.Redis = value;
                    break;
                case "-c" or "--concurrency":
                    options.Concurrency = (int)ParseLong(flag, value, 1, 1_000_000);
                    break;
                case "-d" or "--duration":
                    options.Duration = ParseSeconds(flag, value, allowZero: false);
                    break;
                case "--warmup":
                    options.Warmup = ParseSeconds(flag, value, allowZero: true);
                    break;
                case "-n" or "--rounds":
                    options.Rounds = (int)ParseLong(flag, value, 1, 10_000_000);
                    break;
                case "--api-key":
                    options.ApiKey = value;
                    break;
                case "--key-space":
                    options.KeySpace = (int)ParseLong(flag, value, 1, int.MaxValue);
                    break;
                case "--keys":
                    options.Keys = (int)ParseLong(flag, value, 1, 100_000);
                    break;
                case "--ttl-ms":
                    options.TtlMs = ParseLong(flag, value, 1, long.MaxValue);
                    break;
                case "--wait-ms":
                    options.WaitMs = ParseLong(flag, value, 1, int.MaxValue);
                    break;
                case "--timeout":
                    options.Timeout = ParseSeconds(flag, value, allowZero: false);
                    break;
                case "--grace-ms":
                    options.GraceMs = (int)ParseLong(flag, value, 0, 60_000);
                    break;
                case "--shorten-ms":
                    options.ShortenMs = (int)ParseLong(flag, value, 10, 60_000);
                    break;
                case "--settle-ms":
                    options.SettleMs = (int)ParseLong(flag, value, 0, 600_000);
                    break;
                case "--settle-timeout":
                    options.SettleTimeout = ParseSeconds(flag, value, allowZero: false);
                    break;
                case "--pid":
                    options.Pid = (int)ParseLong(flag, value, 1, int.MaxValue);
                    break;
                default:
                    throw new SetupException($"unknown option '{flag}' (--help for options)");
            }
        }

        return options;
    }

    private static Uri ParseUrl(string flag, string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new SetupException($"{flag} '{value}' is not an http(s) URL");
        }

        return uri;
    }

    private static long ParseLong(string flag, string value, long min, long max)
    {
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long result) || result < min || result > max)
        {
            throw new SetupException($"{flag} '{value}' is not an integer in {min}..{max}");
        }

        return result;
    }

    private static TimeSpan ParseSeconds(string flag, string value, bool allowZero)
    {
        if (!double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds)
            || seconds > 86_400 || (!allowZero && seconds <= 0))
        {
            throw new SetupException($"{flag} '{value}' is not a number of seconds{(allowZero ? "" : " above 0")}");
        }

        return TimeSpan.FromSeconds(seconds);
    }
}
