using System.Globalization;
using System.Runtime.InteropServices;
using LockService.Client;

namespace LockService.Cli;

/// <summary>
/// <c>lockctl run</c>: acquire, run COMMAND in its own process group while a <see cref="LockHandle"/> renews and
/// watches the lock, release when COMMAND exits. A loss stops COMMAND's whole group (SIGTERM, SIGKILL after the
/// grace) and exits 70, whatever COMMAND's own code, so that a script can tell a lost lock from a failed job. With a
/// limit, the same for a permit of the semaphore KEY (a <see cref="PermitHandle"/>; COMMAND also gets LOCK_SLOT and LOCK_LIMIT).
/// </summary>
internal static class RunCommand
{
    // How often, after a loss, to look whether the group's other processes are gone before the grace runs out.
    private static readonly TimeSpan GroupPoll = TimeSpan.FromMilliseconds(20);

    public static async Task<int> RunAsync(Connection connection, AcquireSettings settings, TimeSpan grace, IReadOnlyList<string> command, TextWriter error)
    {
        if (!OperatingSystem.IsLinux())
        {
            await error.WriteLineAsync("lockctl: run needs Linux (process groups through posix_spawn); the other subcommands work anywhere.");
            return ExitCodes.Usage;
        }

        var client = LockClient.Create(connection.Url, connection.ApiKey);

        // Before COMMAND starts, SIGINT or SIGTERM just stops waiting: nothing runs, nothing is held (a waiter that
        // disconnects makes the service release anything it obtained at that moment).
        using var waiting = new CancellationTokenSource();
        (Lease Lease, long GrantedAt)? acquired;
        using (Forward(PosixSignal.SIGINT, () => waiting.Cancel()))
        using (Forward(PosixSignal.SIGTERM, () => waiting.Cancel()))
        {
            try
            {
                acquired = await Acquirer.AcquireAsync(client, settings, waiting.Token);
            }
            catch (OperationCanceledException) when (waiting.IsCancellationRequested)
            {
                await error.WriteLineAsync($"lockctl: interrupted while waiting for '{settings.Key}'; COMMAND not run.");
                return 130;
            }
            catch (LockServiceException ex)
            {
                await error.WriteLineAsync($"lockctl: {ex.Message}");
                return ExitCodes.Of(ex);
            }
        }

        if (acquired is not var (lease, grantedAt))
        {
            await error.WriteLineAsync($"lockctl: {settings.Conflict}; COMMAND not run.");
            return settings.ConflictExitCode;
        }

        await using var handle = client.Hold(lease, grantedAt);
        var environment = new Dictionary<string, string>
        {
            ["LOCK_KEY"] = lease.Key,
            ["LOCK_TOKEN"] = lease.Token,
            ["LOCK_FENCING_TOKEN"] = lease.FencingToken.ToString(CultureInfo.InvariantCulture),
            ["LOCKSERVICE_URL"] = connection.Url.ToString().TrimEnd('/'),
        };
        var held = $"the lock '{lease.Key}'";
        if (lease is Permit permit)
        {
            environment["LOCK_SLOT"] = permit.Slot.ToString(CultureInfo.InvariantCulture);
            environment["LOCK_LIMIT"] = permit.Limit.ToString(CultureInfo.InvariantCulture);
            held = $"the permit (slot {permit.Slot}) of '{lease.Key}'";
        }

        var (child, errno) = ChildProcess.Start(command, environment, error);
        if (child is null)
        {
            var (message, code) = ChildProcess.Describe(command[0], errno);
            await error.WriteLineAsync($"lockctl: {message}");
            return code;
        }

        // From here on a signal to lockctl is COMMAND's business: it goes to COMMAND's group, and lockctl releases the
        // lock once COMMAND has exited. (In a terminal COMMAND's group is the foreground, so the terminal's Ctrl-C goes
        // to COMMAND itself, not through lockctl: the same outcome.)
        using var interrupt = Forward(PosixSignal.SIGINT, () => child.SignalGroup(ChildProcess.SigInt));
        using var terminate = Forward(PosixSignal.SIGTERM, () => child.SignalGroup(ChildProcess.SigTerm));
        using var hangup = Forward(PosixSignal.SIGHUP, () => child.SignalGroup(ChildProcess.SigHup));
        using var quit = Forward(PosixSignal.SIGQUIT, () => child.SignalGroup(ChildProcess.SigQuit));

        var graceOver = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var onLoss = handle.LostToken.Register(() =>
        {
            child.SignalGroup(ChildProcess.SigTerm);
            error.WriteLine($"lockctl: lost {held} ({Describe(handle.LossReason)}); sent SIGTERM to the command's process group{(grace > TimeSpan.Zero ? $", SIGKILL in {grace.TotalSeconds:0.###} s" : "")}.");
            _ = Task.Delay(grace).ContinueWith(
                _ =>
                {
                    // Whatever of the group ignored SIGTERM (the leader included) ends now.
                    if (child.GroupAlive())
                    {
                        child.SignalGroup(ChildProcess.SigKill);
                    }

                    graceOver.TrySetResult();
                },
                TaskScheduler.Default);
        });

        var exitCode = await child.WaitForExitAsync();

        // The terminal back at once, lost lock or not: its next reader must not wait for the release, or for the rest of
        // COMMAND's group during a loss's grace.
        child.ReturnTerminal();
        if (handle.LossReason is null)
        {
            try
            {
                await handle.ReleaseAsync();
            }
            catch (LockServiceException ex)
            {
                // COMMAND finished under the lock; the lock ends at its TTL instead. Its exit code still stands.
                await error.WriteLineAsync($"lockctl: could not release {held} ({ex.Message}); it expires at its TTL.");
            }

            // A loss after COMMAND exited but before the release came too late to matter: COMMAND's code stands.
            return exitCode;
        }

        // The leader is gone; the rest of its group gets the rest of the grace, then SIGKILL (above).
        while (child.GroupAlive() && !graceOver.Task.IsCompleted)
        {
            await Task.WhenAny(graceOver.Task, Task.Delay(GroupPoll));
        }

        return ExitCodes.Lost;
    }

    /// <summary>The stderr wording of each loss reason.</summary>
    public static string Describe(LeaseEndReason? reason) => reason switch
    {
        LeaseEndReason.Forced => "forced: an operator force-released it",
        LeaseEndReason.Expired => "expired: its TTL or hold cap ran out, or it vanished from Redis",
        LeaseEndReason.Released => "released: someone released it with its token",
        LeaseEndReason.Unavailable => "unavailable: the service could not be reached to renew it before its TTL ran out",
        _ => "unknown: the service no longer knows its token",
    };

    private static PosixSignalRegistration Forward(PosixSignal signal, Action action) =>
        PosixSignalRegistration.Create(signal, context =>
        {
            // Handled here: the runtime's default (terminate lockctl) would leave COMMAND running without the lock.
            context.Cancel = true;
            action();
        });
}
