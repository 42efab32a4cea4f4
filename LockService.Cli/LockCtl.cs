using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using LockService.Client;

namespace LockService.Cli;

/// <summary>
/// The command line: <c>run</c>, <c>elect</c>, <c>observe</c>, and the script subcommands, each declaring its options once; help is generated from
/// these declarations. Exit codes: see <see cref="ExitCodes"/>.
/// </summary>
internal static class LockCtl
{
    private static readonly Option<Uri> Url = new("--url")
    {
        Description = "the service (else LOCKSERVICE_URL, else http://localhost:8080)",
        HelpName = "URL",
        Recursive = true,
        DefaultValueFactory = _ => new Uri(Environment.GetEnvironmentVariable("LOCKSERVICE_URL") is { Length: > 0 } url ? url : "http://localhost:8080"),
        CustomParser = result => Uri.TryCreate(Token(result), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : Fail<Uri>(result, "is not an http(s) URL"),
    };

    private static readonly Option<string?> ApiKey = new("--api-key")
    {
        Description = "sent as Authorization: Bearer KEY (else LOCKSERVICE_API_KEY)",
        HelpName = "KEY",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("LOCKSERVICE_API_KEY") is { Length: > 0 } key ? key : null,
    };

    private static readonly Option<TimeSpan?> Ttl = Duration("--ttl", "how long the lock (or permit) lives unless renewed (service default: 30s)", allowForever: false);
    private static readonly Option<TimeSpan?> Wait = Duration("--wait", "how long to wait for a held lock (or a full semaphore): 0 (default), a duration, or forever", allowForever: true);
    private static readonly Option<TimeSpan?> MaxHold = Duration("--max-hold", "the longest the lock may be held in total", allowForever: false);
    private static readonly Option<TimeSpan?> Grace = Duration("--grace", "after a loss, how long COMMAND has between SIGTERM and SIGKILL (default 10s)", allowForever: false);
    private static readonly Option<string?> Owner = new("--owner") { Description = "free text shown by inspection", HelpName = "TEXT" };
    private static readonly Option<string?> IdempotencyKey = new("--idempotency-key") { Description = "a retried acquire with the same key returns the same lease", HelpName = "KEY" };
    private static readonly Option<string?> Prefix = new("--prefix") { Description = "only keys starting with this", HelpName = "P" };
    private static readonly Option<int?> PageSize = Number("--limit", "page size of each request (1..1000)", max: 1000);

    // The same flag as list's page size, on the commands where it can only mean this: KEY is a counting semaphore.
    private static readonly Option<int?> SemaphoreLimit = Number(
        "--limit", "KEY is a counting semaphore: hold one of its permits, at most N holders at once (1..10000), instead of the lock KEY", max: 10000);

    private static readonly Option<bool> Read = new("--read")
    {
        Description = "KEY is a read/write lock: hold a read lease, shared with other readers (LOCK_MODE=read), instead of the lock KEY",
    };

    private static readonly Option<bool> Write = new("--write")
    {
        Description = "KEY is a read/write lock: hold its write lease, alone (LOCK_MODE=write); readers wait for it, and it for every reader",
    };

    private static readonly Option<string?> Value = new("--value")
    {
        Description = "what the leader tells its followers (observers see it; 0-1024 characters)",
        HelpName = "V",
    };

    // Campaigning is waiting to lead, unlike run's acquire, which by default does not wait.
    private static readonly Option<TimeSpan?> CampaignWait = Duration("--wait", "how long to campaign before giving up: forever (default) or a duration", allowForever: true);

    private static readonly Option<bool> Semaphore = new("--semaphore")
    {
        Description = "KEY is a counting semaphore and TOKEN one of its permits (the default when TOKEN comes from LOCK_TOKEN and LOCK_LIMIT is set)",
    };

    private static readonly Option<bool> Semaphores = new("--semaphores")
    {
        Description = "list the semaphores with permits held, each with its permits (GET /admin/semaphores), instead of the locks",
    };

    private static readonly Option<int?> Slot = Number("--slot", "force-release the permit in this slot of the counting semaphore KEY instead of the lock KEY", min: 0, max: 9999);

    private static readonly Option<int> ConflictExitCode = new("--conflict-exit-code")
    {
        Description = "exit code when the lock is held (the semaphore full) and the wait ran out (default 75)",
        HelpName = "N",
        DefaultValueFactory = _ => ExitCodes.Conflict,
        CustomParser = result => int.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 255 ? n : Fail<int>(result, "is not 0..255"),
    };

    private static readonly Argument<string> Key = new("KEY") { Description = "the lock's name (with --limit, --semaphore or --slot: the semaphore's)" };
    private static readonly Argument<string> Name = new("NAME") { Description = "the election's name" };
    private static readonly Argument<string?> TokenArgument = new("TOKEN") { Description = "the lease's (or permit's) token (else LOCK_TOKEN)", Arity = ArgumentArity.ZeroOrOne };

    public static async Task<int> InvokeAsync(string[] args)
    {
        // `run KEY [options] -- COMMAND [ARGS...]`: COMMAND is split off before parsing, so that nothing of it (its
        // options, an @file argument) is ever read as lockctl's.
        var separator = Array.IndexOf(args, "--");
        var ours = separator < 0 ? args : args[..separator];
        var command = separator < 0 ? [] : args[(separator + 1)..];

        var root = Root(command);
        var result = root.Parse(ours, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (result.Action is ParseErrorAction)
        {
            // One line, as for every other problem: scripts log stderr line by line.
            await Console.Error.WriteLineAsync($"lockctl: {string.Join("; ", result.Errors.Select(e => e.Message))} (see lockctl --help)");
            return ExitCodes.Usage;
        }

        // lockctl handles SIGINT and SIGTERM itself (run passes them to COMMAND): no termination handling by the library.
        return await result.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
    }

    private static RootCommand Root(string[] command)
    {
        var run = new Command(
            "run",
            "run COMMAND while holding KEY (with --limit N: one of N permits of the semaphore KEY; with --read or --write: a lease of the read/write lock KEY): lockctl run KEY [options] -- COMMAND [ARGS...]")
        {
            Key, SemaphoreLimit, Read, Write, Ttl, Wait, Owner, MaxHold, Grace, ConflictExitCode,
        };
        run.Validators.Add(result =>
        {
            var kinds = new[] { (Option)SemaphoreLimit, Read, Write }.Where(option => result.GetResult(option) is { Implicit: false }).Select(option => option.Name).ToList();
            if (kinds.Count > 1)
            {
                result.AddError($"{string.Join(" and ", kinds)} exclude each other: KEY is one kind of lock");
            }
        });
        run.SetAction(result => RunAsync(result, "run KEY", Acquire(result), command));

        var elect = new Command(
            "elect",
            "campaign for NAME and run COMMAND only while leading (LOCK_TERM); stopped as run stops it when leadership is lost: lockctl elect NAME [--value V] [options] -- COMMAND [ARGS...]")
        {
            Name, Value, Ttl, CampaignWait, MaxHold, Grace, ConflictExitCode,
        };
        elect.SetAction(result => RunAsync(
            result,
            "elect NAME",
            new AcquireSettings(
                result.GetValue(Name)!, new Target.Election(result.GetValue(Value)), result.GetValue(Ttl), result.GetValue(CampaignWait) ?? Timeout.InfiniteTimeSpan, null,
                result.GetValue(MaxHold), null, result.GetValue(ConflictExitCode)),
            command));

        var observe = new Command("observe", "print one JSON line per leadership change of NAME ({\"event\":\"leader\",...} or {\"event\":\"no-leader\",...}), the current state first, reconnecting by itself, until SIGINT or SIGTERM")
        {
            Name,
        };
        observe.SetAction(result => ObserveCommand.RunAsync(Connection(result), result.GetValue(Name)!));

        var acquire = new Command("acquire", "acquire KEY (with --limit N: a permit of the semaphore KEY); prints the lease (with its token) as JSON")
        {
            Key, SemaphoreLimit, Ttl, Wait, Owner, MaxHold, IdempotencyKey, ConflictExitCode,
        };
        acquire.SetAction(result => ScriptCommands.AcquireAsync(Connection(result), Acquire(result)));

        var release = new Command("release", "release KEY held by TOKEN (with --semaphore: the permit TOKEN of the semaphore KEY)") { Key, TokenArgument, Semaphore };
        release.SetAction(result => ScriptCommands.ReleaseAsync(Connection(result), Held(result)));

        var extend = new Command("extend", "extend KEY held by TOKEN (--semaphore: a permit): its TTL becomes --ttl (default: the acquire's) from now; prints the lease")
        {
            Key, TokenArgument, Semaphore, Ttl,
        };
        extend.SetAction(result => ScriptCommands.ExtendAsync(Connection(result), Held(result), result.GetValue(Ttl)));

        var inspect = new Command("inspect", "who holds KEY (with --semaphore: the permits of the semaphore KEY), never a token; exit 1 when free") { Key, Semaphore };
        inspect.SetAction(result => ScriptCommands.InspectAsync(Connection(result), result.GetValue(Key)!, result.GetValue(Semaphore)));

        var list = new Command("list", "the held locks (operator endpoint GET /admin/locks; with --semaphores: the semaphores with permits held, GET /admin/semaphores), every page")
        {
            Prefix, PageSize, Semaphores,
        };
        list.SetAction(result => ScriptCommands.ListAsync(Connection(result), result.GetValue(Prefix), result.GetValue(PageSize), result.GetValue(Semaphores)));

        var force = new Command("force-release", "release KEY whoever holds it (with --slot N: the permit in slot N of the semaphore KEY); operator endpoint, admin key; exit 1 when free")
        {
            Key, Slot,
        };
        force.SetAction(result => ScriptCommands.ForceReleaseAsync(Connection(result), result.GetValue(Key)!, result.GetValue(Slot)));

        return new RootCommand(
            """
            lockctl: the LockService command-line client, for locks, counting semaphores (run/acquire --limit N;
            release, extend, inspect --semaphore; list --semaphores; force-release --slot N), read/write locks (run
            --read|--write) and elections (elect, observe). Exit codes: 0 done (run, elect: COMMAND's code), 1 not held,
            64 bad argument or 400, 69 service unreachable or 503, 70 lock (permit, lease, leadership) lost while
            COMMAND ran, 75 held (semaphore full, election led) and the wait ran out (--conflict-exit-code), 77 401/403.
            """)
        {
            Url, ApiKey, run, elect, observe, acquire, release, extend, inspect, list, force,
        };
    }

    private static Connection Connection(ParseResult result) => new(result.GetValue(Url)!, result.GetValue(ApiKey));

    /// <summary>run and elect: COMMAND under the lease <paramref name="settings"/> names.</summary>
    private static async Task<int> RunAsync(ParseResult result, string usage, AcquireSettings settings, string[] command)
    {
        if (command.Length == 0)
        {
            await Console.Error.WriteLineAsync($"lockctl: {usage.Split(' ')[0]} needs a COMMAND after --: lockctl {usage} [options] -- COMMAND [ARGS...]");
            return ExitCodes.Usage;
        }

        return await RunCommand.RunAsync(Connection(result), settings, result.GetValue(Grace) ?? TimeSpan.FromSeconds(10), command, Console.Error);
    }

    /// <summary>The acquire options of run and acquire; the kind from --limit (a permit), --read or --write (a read/write lease).</summary>
    private static AcquireSettings Acquire(ParseResult result) => new(
        result.GetValue(Key)!,
        result.GetValue(SemaphoreLimit) is { } limit ? new Target.Permit(limit)
            : result.GetValue(Read) ? new Target.RwLock(RwLockMode.Read)
            : result.GetValue(Write) ? new Target.RwLock(RwLockMode.Write)
            : new Target.Lock(),
        result.GetValue(Ttl), result.GetValue(Wait) ?? TimeSpan.Zero, result.GetValue(Owner), result.GetValue(MaxHold), result.GetValue(IdempotencyKey),
        result.GetValue(ConflictExitCode));

    /// <summary>
    /// KEY and TOKEN of release and extend. Without TOKEN it is LOCK_TOKEN, the one `lockctl run` gave COMMAND, and then
    /// the kind is what run held too: a permit when run set LOCK_LIMIT.
    /// </summary>
    private static HeldLease Held(ParseResult result)
    {
        var token = result.GetValue(TokenArgument);
        var semaphore = result.GetValue(Semaphore) || (token is null && Environment.GetEnvironmentVariable("LOCK_LIMIT") is { Length: > 0 });
        return new HeldLease(result.GetValue(Key)!, token ?? Environment.GetEnvironmentVariable("LOCK_TOKEN") ?? "", semaphore);
    }

    private static Option<TimeSpan?> Duration(string name, string description, bool allowForever) => new(name)
    {
        Description = description,
        HelpName = allowForever ? "DURATION|forever" : "DURATION",
        CustomParser = result => Durations.Parse(result, allowForever),
    };

    private static Option<int?> Number(string name, string description, int max, int min = 1) => new(name)
    {
        Description = description,
        HelpName = "N",
        CustomParser = result => int.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : Fail<int?>(result, $"is not {min}..{max}"),
    };

    private static string Token(ArgumentResult result) => result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;

    private static T? Fail<T>(ArgumentResult result, string problem)
    {
        var flag = (result.Parent as OptionResult)?.IdentifierToken?.Value ?? "option";
        result.AddError($"{flag} '{Token(result)}' {problem}");
        return default;
    }
}
