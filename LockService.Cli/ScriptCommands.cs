using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LockService.Client;

namespace LockService.Cli;

/// <summary>The subcommands for scripts: JSON on stdout, one readable line on stderr for a problem, exit codes as in <see cref="ExitCodes"/>.</summary>
internal static class ScriptCommands
{
    public static Task<int> AcquireAsync(Connection connection, AcquireSettings settings) => Run(connection, async client =>
    {
        if (await Acquirer.AcquireAsync(client, settings, CancellationToken.None) is not var (lease, _))
        {
            return Problem($"'{settings.Key}' is held by someone else{(settings.Wait > TimeSpan.Zero ? " and the wait ran out" : "")}.", settings.ConflictExitCode);
        }

        return Print(lease, ClientJson.Default.Lease);
    });

    public static Task<int> ReleaseAsync(Connection connection, string key, string token) => Run(connection, async client =>
    {
        var result = await client.ReleaseAsync(key, token);
        return result.Released ? PrintOutcome(key, "released") : NotHeld(key, result.EndReason);
    });

    public static Task<int> ExtendAsync(Connection connection, string key, string token, TimeSpan? ttl) => Run(connection, async client =>
    {
        var result = await client.ExtendAsync(key, token, ttl);
        return result.Extended ? Print(result.Lease, ClientJson.Default.Lease) : NotHeld(key, result.EndReason);
    });

    public static Task<int> InspectAsync(Connection connection, string key) => Run(connection, async client =>
        await client.InspectAsync(key) is { } info ? Print(info, ClientJson.Default.LockInfo) : Problem($"'{key}' is not held.", ExitCodes.NotHeld));

    public static Task<int> ListAsync(Connection connection, string? prefix, int? limit) => Run(connection, async client =>
    {
        var locks = new List<LockInfo>();
        await foreach (var info in client.ListAllAsync(prefix, limit))
        {
            locks.Add(info);
        }

        return Print(new LockPage(locks, null), ClientJson.Default.LockPage);
    });

    public static Task<int> ForceReleaseAsync(Connection connection, string key) => Run(connection, async client =>
        await client.ForceReleaseAsync(key) ? PrintOutcome(key, "released") : Problem($"'{key}' is not held.", ExitCodes.NotHeld));

    private static async Task<int> Run(Connection connection, Func<LockClient, Task<int>> action)
    {
        try
        {
            return await action(LockClient.Create(connection.Url, connection.ApiKey));
        }
        catch (LockServiceException ex)
        {
            return Problem(ex.Message, ExitCodes.Of(ex));
        }
    }

    private static int NotHeld(string key, LeaseEndReason? reason) =>
        Problem($"'{key}' is not held by this token ({RunCommand.Describe(reason)}).", ExitCodes.NotHeld);

    private static int Problem(string message, int exitCode)
    {
        Console.Error.WriteLine($"lockctl: {message}");
        return exitCode;
    }

    private static int Print<T>(T value, JsonTypeInfo<T> type)
    {
        Console.Out.WriteLine(JsonSerializer.Serialize(value, type));
        return ExitCodes.Ok;
    }

    private static int PrintOutcome(string key, string outcome)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("key", key);
            json.WriteBoolean(outcome, true);
            json.WriteEndObject();
        }

        Console.Out.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        return ExitCodes.Ok;
    }
}
