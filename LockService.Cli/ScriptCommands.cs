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
            return Problem($"{settings.Conflict}.", settings.ConflictExitCode);
        }

        return Print(lease);
    });

    public static Task<int> ReleaseAsync(Connection connection, HeldLease held) => Run(connection, async client =>
    {
        var result = held.Semaphore ? await client.ReleasePermitAsync(held.Key, held.Token) : await client.ReleaseAsync(held.Key, held.Token);
        return result.Released ? PrintOutcome(held.Key, "released") : NotHeld(held, result.EndReason);
    });

    public static Task<int> ExtendAsync(Connection connection, HeldLease held, TimeSpan? ttl) => Run(connection, async client =>
    {
        var result = held.Semaphore ? await client.ExtendPermitAsync(held.Key, held.Token, ttl) : await client.ExtendAsync(held.Key, held.Token, ttl);
        return result.Extended ? Print(result.Lease) : NotHeld(held, result.EndReason);
    });

    public static Task<int> InspectAsync(Connection connection, string key, bool semaphore) => Run(connection, async client =>
        semaphore
            ? await client.InspectSemaphoreAsync(key) is { } permits ? Print(permits, ClientJson.Default.SemaphoreInfo) : Problem($"'{key}' has no permit held.", ExitCodes.NotHeld)
            : await client.InspectAsync(key) is { } info ? Print(info, ClientJson.Default.LockInfo) : Problem($"'{key}' is not held.", ExitCodes.NotHeld));

    public static Task<int> ListAsync(Connection connection, string? prefix, int? limit, bool semaphores) => Run(connection, async client =>
        semaphores
            ? Print(new SemaphorePage(await client.ListAllSemaphoresAsync(prefix, limit).ToListAsync(), null), ClientJson.Default.SemaphorePage)
            : Print(new LockPage(await client.ListAllAsync(prefix, limit).ToListAsync(), null), ClientJson.Default.LockPage));

    public static Task<int> ForceReleaseAsync(Connection connection, string key, int? slot) => Run(connection, async client =>
        slot is { } n
            ? await client.ForceReleasePermitAsync(key, n) ? PrintOutcome(key, "released") : Problem($"slot {n} of '{key}' is free.", ExitCodes.NotHeld)
            : await client.ForceReleaseAsync(key) ? PrintOutcome(key, "released") : Problem($"'{key}' is not held.", ExitCodes.NotHeld));

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

    private static int NotHeld(HeldLease held, LeaseEndReason? reason) =>
        Problem(
            $"{(held.Semaphore ? $"this token holds no permit of '{held.Key}'" : $"'{held.Key}' is not held by this token")} ({RunCommand.Describe(reason)}).",
            ExitCodes.NotHeld);

    private static int Problem(string message, int exitCode)
    {
        Console.Error.WriteLine($"lockctl: {message}");
        return exitCode;
    }

    /// <summary>A lease as the service gave it: a permit with its slot and limit.</summary>
    private static int Print(Lease lease) =>
        lease is Permit permit ? Print(permit, ClientJson.Default.Permit) : Print(lease, ClientJson.Default.Lease);

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
