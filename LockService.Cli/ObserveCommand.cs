using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using LockService.Client;

namespace LockService.Cli;

/// <summary>
/// <c>lockctl observe NAME</c>: one JSON line on stdout per leadership change, the event's data with the event's name
/// added (<c>{"event":"leader","name",...}</c>, <c>{"event":"no-leader","name"}</c>), the current state first, for shell
/// followers (<c>lockctl observe svc | while read -r ev; do ...; done</c>). The client reconnects by itself with
/// Last-Event-ID (one stderr line per interruption); SIGINT or SIGTERM ends it with exit 0, the normal way to stop a
/// follower; errors a reconnection cannot mend (400, 401, 403) end it with their exit code.
/// </summary>
internal static class ObserveCommand
{
    public static async Task<int> RunAsync(Connection connection, string name)
    {
        using var stop = new CancellationTokenSource();
        using var registrations = new CompositeRegistration(
            [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM }.Select(signal => PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            }))]);
        var client = LockClient.Create(connection.Url, connection.ApiKey);
        try
        {
            await foreach (var change in client.ObserveAsync(name, Interrupted, stop.Token))
            {
                await Console.Out.WriteLineAsync(Line(change));
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (LockServiceException ex)
        {
            await Console.Error.WriteLineAsync($"lockctl: {ex.Message}");
            return ExitCodes.Of(ex);
        }
        catch (IOException)
        {
            // stdout closed (a reader such as `head -1` that has what it wanted): nobody is following any more.
        }

        return ExitCodes.Ok;
    }

    private static void Interrupted(LockServiceException problem) =>
        Console.Error.WriteLine($"lockctl: observing interrupted ({problem.Message}); reconnecting.");

    /// <summary>The event's data as the service sent it, with <c>event</c> first: one line of JSON.</summary>
    private static string Line(ElectionEvent change)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("event", change.Kind);
            foreach (var member in change.Data.EnumerateObject())
            {
                if (member.Name != "event")
                {
                    member.WriteTo(json);
                }
            }

            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
