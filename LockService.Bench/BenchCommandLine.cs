using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace LockService.Bench;

/// <summary>
/// The command line: one command per mode, each with the options that mode reads. Every option's default and
/// range is declared here once; the help text is generated from these declarations.
/// </summary>
internal sealed class BenchCommandLine
{
    private const int LimitSeconds = 86_400;

    private readonly Option<Uri?> _url = Url("--url", "service", "http://127.0.0.1:8080");
    private readonly Option<Uri?> _url2 = Url("--url2", "the waiter talks to this instance, the holder to --url", defaultValue: null);
    private readonly Option<string> _redis = new("--redis")
    {
        Description = "StackExchange.Redis configuration of the service's Redis, read for INFO commandstats",
        HelpName = "CONFIG",
        DefaultValueFactory = _ => "127.0.0.1:6379",
    };

    private readonly Option<int> _loops = Integer("--concurrency", "N", "closed loops", 1, 1_000_000, 50, "-c");
    private readonly Option<int> _waiters = Integer("--concurrency", "N", "requests waiting at once", 1, 1_000_000, 5000, "-c");
    private readonly Option<int> _streams = Integer("--concurrency", "N", "streams held at once, on distinct keys", 1, 1_000_000, 1000, "-c");
    private readonly Option<double> _holdDuration = Seconds("--duration", "seconds to hold the streams once all are acquired", allowZero: false, 10, "-d");
    private readonly Option<double> _duration = Seconds("--duration", "measured seconds", allowZero: false, 10, "-d");
    private readonly Option<double> _warmup = Seconds("--warmup", "unmeasured seconds before", allowZero: true, 2);
    private readonly Option<double> _warmupRounds = Seconds("--warmup", "seconds of unrecorded rounds before", allowZero: true, 2);
    private readonly Option<int> _rounds = Integer("--rounds", "N", "measured rounds", 1, 10_000_000, 200, "-n");
    private readonly Option<string?> _apiKey = new("--api-key") { Description = "sent as Authorization: Bearer KEY", HelpName = "KEY" };
    private readonly Option<bool> _jsonOnly = new("--json-only") { Description = "print only the JSON line" };
    private readonly Option<int> _keySpace = Integer("--key-space", "N", "distinct keys", 1, int.MaxValue, 1_000_000);
    private readonly Option<int> _rate = Integer(
        "--rate", "N", "start at most N cycles per second across all loops, evenly spaced (open loop, for CPU per cycle at the same load); 0 = as fast as the loops go", 0, 1_000_000, 0);
    private readonly Option<int> _keys = Integer("--keys", "N", "keys to wait on", 1, 100_000, 5);
    private readonly Option<int> _observers = Integer("--observers", "N", "observers of the change-to-observer part, half on --url, half on --url2", 1, 100_000, 100);
    private readonly Option<int> _manyObservers = Integer("--concurrency", "N", "observers of one name held open on --url for the idle part", 1, 1_000_000, 10_000, "-c");
    private readonly Option<double> _idleDuration = Seconds("--duration", "seconds the observers are held idle (CPU measured over them)", allowZero: false, 10, "-d");
    private readonly Option<long> _ttlMs = Integer<long>("--ttl-ms", "MS", "ttlMs of every acquire", 1, long.MaxValue, 30_000);
    private readonly Option<long> _waitMs = Integer<long>("--wait-ms", "MS", "waitMs of waiting acquires", 1, int.MaxValue, 5000);
    private readonly Option<long> _watchMs = Integer<long>("--wait-ms", "MS", "waitMs of the watch", 1, int.MaxValue, 5000);
    private readonly Option<long> _waitersWaitMs = Integer<long>("--wait-ms", "MS", "waitMs of the waiters", 1, int.MaxValue, 60_000);
    private readonly Option<double> _timeout = Seconds("--timeout", "per-request timeout in seconds, added to waitMs for waiting requests", allowZero: false, 10);
    private readonly Option<int> _graceMs = Integer("--grace-ms", "MS", "pause after starting the waiter", 0, 60_000, 20);
    private readonly Option<int> _shortenMs = Integer(
        "--shorten-ms", "MS", "the holder cuts its TTL to MS (PATCH) instead of releasing; the figure is then from the PATCH's 200 plus MS to the waiter's 201", 10, 60_000, null);

    private readonly Option<int> _settleMs = Integer(
        "--settle-ms", "MS", "pause after all connections are open when the service has no lockservice_waiting_requests gauge", 0, 600_000, 1000);

    private readonly Option<double> _settleTimeout = Seconds("--settle-timeout", "bound in seconds on waiting for the waiters to be in place", allowZero: false, 60);
    private readonly Option<double> _openTimeout = Seconds("--settle-timeout", "bound in seconds on each stream's open, until its acquired event", allowZero: false, 60);
    private readonly Option<int> _pid = Integer("--pid", "PID", "service process: report its peak RSS (from /proc/PID/status)", 1, int.MaxValue, null);
    private readonly Option<int> _limit = Integer("--limit", "N", "permits of the one semaphore (limit)", 1, 1_000_000, 10);
    private readonly Option<int> _handoffLimit = Integer(
        "--limit", "N", "run on a semaphore of this limit instead of a lock: the other N-1 places are held through each round, the holder takes the last", 1, 1_000_000, null);

    private readonly Option<string?> _rwMode = Choice(
        "--rw-mode", "run on read/write locks: the mode of every acquire (cycles), or of the holder, whose release hands over to a waiting writer (handoff)", "read", "write");

    public BenchCommandLine(Func<BenchOptions, Task<int>> run)
    {
        Root = new RootCommand(
            """
            LockService load generator. Output: a table, then one JSON line. Exit code 0 when the run completed
            (errors are counted in the report), 2 when the service, Redis or the command line is unusable.
            """)
        {
            Mode(BenchMode.Cycles, "C closed loops of acquire -> release on random keys of a large key space",
                _loops, _duration, _warmup, _keySpace, _ttlMs, _rate, _rwMode),
            Mode(BenchMode.Contended, "C closed loops on ONE key: acquire with waitMs, release at once; also Redis commands per acquisition from INFO commandstats (--redis)",
                _loops, _duration, _warmup, _redis, _ttlMs, _waitMs),
            Mode(BenchMode.Handoff, "N rounds: holder holds k, a waiter waits on k, holder releases (or, with --shorten-ms, cuts its TTL); time from the DELETE's response to the waiter's 201",
                _rounds, _warmupRounds, _url2, _ttlMs, _waitMs, _graceMs, _shortenMs, _handoffLimit, _rwMode),
            Mode(BenchMode.Waiters, "W (-c) requests waiting at once on --keys keys; then drain them all",
                _waiters, _keys, _ttlMs, _waitersWaitMs, _settleMs, _settleTimeout),
            Mode(BenchMode.WatchLoss, "N rounds: holder holds k, a watcher watches its token (GET with waitMs), holder releases; time from the DELETE's 204 to the watch's 404",
                _rounds, _warmupRounds, _url2, _ttlMs, _watchMs, _graceMs),
            Mode(BenchMode.StreamHandoff, "N rounds: a stream holds k, a waiter waits on k, the stream's client closes it; time from the close to the waiter's 201",
                _rounds, _warmupRounds, _url2, _ttlMs, _waitMs, _graceMs),
            Mode(BenchMode.Streams, "C (-c) locks held by streams at once on distinct keys, held -d seconds, then closed; service RSS, renewals, keys freed",
                _streams, _holdDuration, _ttlMs, _openTimeout),
            Mode(BenchMode.Elections, "Elections: N proclaims seen by --observers observers on --url and --url2 (proclaim to observer); N hand-overs from a closed leader stream on --url to a candidate waiting on --url2; -c observers of one name held idle -d seconds (RSS, idle CPU with --pid)",
                _rounds, _url2, _observers, _manyObservers, _idleDuration, _ttlMs, _waitMs, _graceMs, _settleTimeout),
            Mode(BenchMode.Semaphores, "C closed loops on ONE semaphore of --limit places: acquire a permit with waitMs, release at once (contended, for permits); Redis commands per acquisition from INFO commandstats (--redis)",
                _loops, _duration, _warmup, _redis, _ttlMs, _waitMs, _limit),
        };

        Command Mode(BenchMode mode, string description, params Option[] options)
        {
            var command = new Command(mode.ToString().ToLowerInvariant(), description);
            foreach (var option in (Option[])[_url, .. options, _timeout, _apiKey, _pid, _jsonOnly])
            {
                command.Options.Add(option);
            }

            command.SetAction(result => run(Read(result, mode)));
            return command;
        }
    }

    public RootCommand Root { get; }

    /// <summary>Parses and runs; a command line that does not parse is reported in one line on stderr, exit code 2.</summary>
    public async Task<int> InvokeAsync(string[] args, TextWriter error)
    {
        var result = Root.Parse(args);
        if (result.Action is ParseErrorAction)
        {
            string modes = string.Join(", ", Root.Subcommands.Select(c => c.Name));
            string problem = result.CommandResult.Command != Root ? string.Join("; ", result.Errors.Select(e => e.Message))
                : args.Length > 0 && !args[0].StartsWith('-') ? $"unknown mode '{args[0]}': {modes}"
                : $"no mode given: {modes}";
            await error.WriteLineAsync($"lockservice-bench: {problem} (--help for usage)");
            return 2;
        }

        // The run's own failures are reported by the run; Ctrl+C stops the process at once, as a load generator should.
        return await result.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
    }

    private BenchOptions Read(ParseResult result, BenchMode mode) => new()
    {
        Mode = mode,
        Url = Value(result, _url)!,
        Url2 = Value(result, _url2),
        Redis = Value(result, _redis),
        Concurrency = Value(result, mode switch { BenchMode.Waiters => _waiters, BenchMode.Streams => _streams, BenchMode.Elections => _manyObservers, _ => _loops }),
        Duration = TimeSpan.FromSeconds(Value(result, mode switch { BenchMode.Streams => _holdDuration, BenchMode.Elections => _idleDuration, _ => _duration })),
        Warmup = TimeSpan.FromSeconds(Value(result, mode is BenchMode.Handoff or BenchMode.WatchLoss or BenchMode.StreamHandoff ? _warmupRounds : _warmup)),
        Rounds = Value(result, _rounds),
        ApiKey = Value(result, _apiKey),
        JsonOnly = Value(result, _jsonOnly),
        KeySpace = Value(result, _keySpace),
        Rate = Value(result, _rate),
        Keys = Value(result, mode == BenchMode.Elections ? _observers : _keys),
        TtlMs = Value(result, _ttlMs),
        WaitMs = Value(result, mode switch { BenchMode.Waiters => _waitersWaitMs, BenchMode.WatchLoss => _watchMs, _ => _waitMs }),
        Timeout = TimeSpan.FromSeconds(Value(result, _timeout)),
        GraceMs = Value(result, _graceMs),
        ShortenMs = Given(result, _shortenMs),
        SettleMs = Value(result, _settleMs),
        SettleTimeout = TimeSpan.FromSeconds(Value(result, mode == BenchMode.Streams ? _openTimeout : _settleTimeout)),
        Pid = Given(result, _pid),
        Limit = mode switch { BenchMode.Semaphores => Value(result, _limit), BenchMode.Handoff => Given(result, _handoffLimit), _ => null },
        RwMode = mode is BenchMode.Cycles or BenchMode.Handoff ? result.GetValue(_rwMode) : null,
    };

    /// <summary>
    /// The option's value; where the mode's command does not have the option, its declared default (ParseResult
    /// would give default(T)), so that no setting is 0 or null by accident.
    /// </summary>
    private static T Value<T>(ParseResult result, Option<T> option) =>
        result.GetResult(option) is null && option.HasDefaultValue ? (T)option.GetDefaultValue()! : result.GetValue(option)!;

    /// <summary>The value of an option without a default, null when not given.</summary>
    private static T? Given<T>(ParseResult result, Option<T> option)
        where T : struct => result.GetResult(option) is null ? null : result.GetValue(option);

    private static Option<Uri?> Url(string name, string description, string? defaultValue)
    {
        var option = new Option<Uri?>(name)
        {
            Description = description,
            HelpName = "URL",
            CustomParser = result => Uri.TryCreate(Token(result), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
                ? uri
                : Fail<Uri?>(result, "is not an http(s) URL"),
        };
        if (defaultValue is not null)
        {
            option.DefaultValueFactory = _ => new Uri(defaultValue);
        }

        return option;
    }

    /// <summary>One of a few words, exactly; no default (absent: null).</summary>
    private static Option<string?> Choice(string name, string description, params string[] choices) => new(name)
    {
        Description = description,
        HelpName = string.Join("|", choices),
        CustomParser = result => Token(result) is { } word && choices.Contains(word, StringComparer.Ordinal)
            ? word
            : Fail<string?>(result, $"is not one of {string.Join(", ", choices)}"),
    };

    /// <summary>An integer in min..max, digits only (no sign, no separators), as the old hand parser took them.</summary>
    private static Option<T> Integer<T>(string name, string helpName, string description, T min, T max, T? defaultValue, params string[] aliases)
        where T : struct, IBinaryInteger<T>
    {
        var option = new Option<T>(name, aliases)
        {
            Description = description,
            HelpName = helpName,
            CustomParser = result => T.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
                ? value
                : Fail<T>(result, FormattableString.Invariant($"is not an integer in {min}..{max}")),
        };
        if (defaultValue is T value)
        {
            option.DefaultValueFactory = _ => value;
        }

        return option;
    }

    private static Option<double> Seconds(string name, string description, bool allowZero, double defaultValue, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        HelpName = "S",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result => double.TryParse(Token(result), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds)
            && seconds <= LimitSeconds && (allowZero || seconds > 0)
                ? seconds
                : Fail<double>(result, $"is not a number of seconds {(allowZero ? "from 0" : "above 0")} up to {LimitSeconds}"),
    };

    private static string Token(ArgumentResult result) => result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;

    /// <summary>Records a parse error naming the option as it was typed (-c or --concurrency) and its value.</summary>
    private static T? Fail<T>(ArgumentResult result, string problem)
    {
        string flag = (result.Parent as OptionResult)?.IdentifierToken?.Value ?? "option";
        result.AddError($"{flag} '{Token(result)}' {problem}");
        return default;
    }
}
