using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;

namespace LockService.Cli;

/// <summary>
/// The command line: <c>run</c>, and the script subcommands, each declaring its options once; help is generated from
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

    private static readonly Option<TimeSpan?> Ttl = Duration("--ttl", "how long the lock lives unless renewed (service default: 30s)", allowForever: false);
    private static readonly Option<TimeSpan?> Wait = Duration("--wait", "how long to wait for a held lock: 0 (default), a duration, or forever", allowForever: true);
    private static readonly Option<TimeSpan?> MaxHold = Duration("--max-hold", "the longest the lock may be held in total", allowForever: false);
    private static readonly Option<TimeSpan?> Grace = Duration("--grace", "after a loss, how long COMMAND has between SIGTERM and SIGKILL (default 10s)", allowForever: false);
    private static readonly Option<string?> Owner = new("--owner") { Description = "free text shown by inspection", HelpName = "TEXT" };
    private static readonly Option<string?> IdempotencyKey = new("--idempotency-key") { Description = "a retried acquire with the same key returns the same lease", HelpName = "KEY" };
    private static readonly Option<string?> Prefix = new("--prefix") { Description = "only keys starting with this", HelpName = "P" };
    private static readonly Option<int?> Limit = new("--limit")
    {
        Description = "page size of each request (1..1000)",
        HelpName = "N",
        CustomParser = result => int.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 1000 ? n : Fail<int?>(result, "is not 1..1000"),
    };

    private static readonly Option<int> ConflictExitCode = new("--conflict-exit-code")
    {
        Description = "exit code when the lock is held and the wait ran out (default 75)",
        HelpName = "N",
        DefaultValueFactory = _ => ExitCodes.Conflict,
        CustomParser = result => int.TryParse(Token(result), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 255 ? n : Fail<int>(result, "is not 0..255"),
    };

    private static readonly Argument<string> Key = new("KEY") { Description = "the lock's name" };
    private static readonly Argument<string?> TokenArgument = new("TOKEN") { Description = "the lease's token (else LOCK_TOKEN)", Arity = ArgumentArity.ZeroOrOne };

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
            foreach (var problem in result.Errors)
            {
                await Console.Error.WriteLineAsync($"lockctl: {problem.Message}");
            }

            await Console.Error.WriteLineAsync("lockctl: see lockctl --help");
            return ExitCodes.Usage;
        }

        // lockctl handles SIGINT and SIGTERM itself (run passes them to COMMAND): no termination handling by the library.
        return await result.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
    }

    private static RootCommand Root(string[] command)
    {
        var run = new Command("run", "run COMMAND while holding KEY: lockctl run KEY [options] -- COMMAND [ARGS...]")
        {
            Key, Ttl, Wait, Owner, MaxHold, Grace, ConflictExitCode,
        };
        run.SetAction(async result =>
        {
            if (command.Length == 0)
            {
                await Console.Error.WriteLineAsync("lockctl: run needs a COMMAND after --: lockctl run KEY [options] -- COMMAND [ARGS...]");
                return ExitCodes.Usage;
            }

            return await RunCommand.RunAsync(Connection(result), Acquire(result), result.GetValue(Grace) ?? TimeSpan.FromSeconds(10), command, Console.Error);
        });

        var acquire = new Command("acquire", "acquire KEY; prints the lease (with its token) as JSON") { Key, Ttl, Wait, Owner, MaxHold, IdempotencyKey, ConflictExitCode };
        acquire.SetAction(result => ScriptCommands.AcquireAsync(Connection(result), Acquire(result)));

        var release = new Command("release", "release KEY held by TOKEN") { Key, TokenArgument };
        release.SetAction(result => ScriptCommands.ReleaseAsync(Connection(result), result.GetValue(Key)!, TokenOf(result)));

        var extend = new Command("extend", "extend KEY held by TOKEN: its TTL becomes --ttl (default: the acquire's) from now; prints the lease") { Key, TokenArgument, Ttl };
        extend.SetAction(result => ScriptCommands.ExtendAsync(Connection(result), result.GetValue(Key)!, TokenOf(result), result.GetValue(Ttl)));

        var inspect = new Command("inspect", "who holds KEY (never the token); exit 1 when free") { Key };
        inspect.SetAction(result => ScriptCommands.InspectAsync(Connection(result), result.GetValue(Key)!));

        var list = new Command("list", "the held locks (operator endpoint GET /admin/locks), every page") { Prefix, Limit };
        list.SetAction(result => ScriptCommands.ListAsync(Connection(result), result.GetValue(Prefix), result.GetValue(Limit)));

        var force = new Command("force-release", "release KEY whoever holds it (operator endpoint, admin key); exit 1 when free") { Key };
        force.SetAction(result => ScriptCommands.ForceReleaseAsync(Connection(result), result.GetValue(Key)!));

        return new RootCommand(
            """
            lockctl: the LockService command-line client. Exit codes: 0 done (run: COMMAND's code), 1 not held,
            64 bad argument or 400, 69 service unreachable or 503, 70 lock lost while COMMAND ran,
            75 held and the wait ran out (--conflict-exit-code), 77 401/403.
            """)
        {
            Url, ApiKey, run, acquire, release, extend, inspect, list, force,
        };
    }

    private static Connection Connection(ParseResult result) => new(result.GetValue(Url)!, result.GetValue(ApiKey));

    private static AcquireSettings Acquire(ParseResult result) => new(
        result.GetValue(Key)!, result.GetValue(Ttl), result.GetValue(Wait) ?? TimeSpan.Zero, result.GetValue(Owner), result.GetValue(MaxHold),
        result.GetValue(IdempotencyKey), result.GetValue(ConflictExitCode));

    private static string TokenOf(ParseResult result) =>
        result.GetValue(TokenArgument) ?? Environment.GetEnvironmentVariable("LOCK_TOKEN") ?? "";

    private static Option<TimeSpan?> Duration(string name, string description, bool allowForever) => new(name)
    {
        Description = description,
        HelpName = allowForever ? "DURATION|forever" : "DURATION",
        CustomParser = result => Durations.Parse(result, allowForever),
    };

    private static string Token(ArgumentResult result) => result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;

    private static T? Fail<T>(ArgumentResult result, string problem)
    {
        var flag = (result.Parent as OptionResult)?.IdentifierToken?.Value ?? "option";
        result.AddError($"{flag} '{Token(result)}' {problem}");
        return default;
    }
}
