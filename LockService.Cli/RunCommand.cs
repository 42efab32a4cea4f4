using System.Globalization;
using System.Runtime.InteropServices;
using LockService.Client;

namespace LockService.Cli;

/// <summary>
/// <c>lockctl run</c>: acquire, run COMMAND in its own process group while a <see cref="LockHandle"/> renews and
/// watches the lock, release when COMMAND exits. A loss stops COMMAND's whole group (SIGTERM, SIGKILL after the
/// grace) and exits 70, whatever COMMAND's own code, so that a script can tell a lost lock from a failed job. Should
/// lockctl itself die (SIGKILL included), its <see cref="Watchdog"/> stops COMMAND's group before the lease ends. With a
/// limit, the same for a permit of the semaphore KEY (a <see cref="PermitHandle"/>; COMMAND also gets LOCK_SLOT and LOCK_LIMIT);
/// with a mode, for a lease of the read/write lock KEY (LOCK_MODE); for <c>elect</c>, for the leadership of the election
/// KEY, which COMMAND then has only while it leads (LOCK_TERM, which is also its LOCK_FENCING_TOKEN).
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

        // Installed before anything starts and kept to the end, so that no signal ever finds the runtime's default
        // (ending lockctl, which would leave COMMAND running without the lock): before COMMAND starts, a signal stops
        // the wait (nothing runs, nothing is held: a waiter that disconnects makes the service release anything it
        // obtained at that moment) and COMMAND is not started; from its start on, it goes to COMMAND's group.
        using var signals = new Signals();

        // Started before the acquire, so that its start-up overlaps the request (see Watchdog: it stops COMMAND if
        // lockctl dies).
        var (watchdog, watchdogErrno) = Watchdog.Start(grace);
        if (watchdog is null)
        {
            await error.WriteLineAsync($"lockctl: could not start its watchdog ({Marshal.GetPInvokeErrorMessage(watchdogErrno)}); COMMAND not run.");
            return ExitCodes.CommandNotExecutable;
        }

        using var guard = watchdog;
        (Lease Lease, long GrantedAt)? acquired;
        try
        {
            acquired = await Acquirer.AcquireAsync(client, settings, signals.Waiting);
        }
        catch (OperationCanceledException) when (signals.Interrupted)
        {
            await error.WriteLineAsync($"lockctl: interrupted while waiting for '{settings.Key}'; COMMAND not run.");
            return ExitCodes.Interrupted;
        }
        catch (LockServiceException ex)
        {
            await error.WriteLineAsync($"lockctl: {ex.Message}");
            return ExitCodes.Of(ex);
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
        var held = Describe(lease, environment);

        if (!await watchdog.ReadyAsync())
        {
            await error.WriteLineAsync("lockctl: its watchdog did not start; COMMAND not run.");
            return ExitCodes.CommandNotExecutable;
        }

        // The watchdog learns how long the lease lasts before COMMAND exists, and COMMAND's group right after its spawn,
        // so that as little as possible of lockctl runs between the two (see Watchdog).
        watchdog.HeldFor(handle.TimeLeft);
        var (child, errno) = signals.Start(() => ChildProcess.Start(command, environment, error, watchdog.Guard));
        if (signals.Interrupted && child is null)
        {
            await error.WriteLineAsync($"lockctl: interrupted before COMMAND started; COMMAND not run.");
            return ExitCodes.Interrupted;
        }

        if (child is null)
        {
            var (message, code) = ChildProcess.Describe(command[0], errno);
            await error.WriteLineAsync($"lockctl: {message}");
            return code;
        }

        // From here on, were lockctl to die, the watchdog stops COMMAND's group before the lease it last heard of ends.
        handle.Renewed += (_, _) => watchdog.HeldFor(handle.TimeLeft);

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
            watchdog.Done();
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

        watchdog.Done();
        return ExitCodes.Lost;
    }

    /// <summary>
    /// What COMMAND holds, as stderr names it; adds to <paramref name="environment"/> what the lease's kind has besides
    /// the LOCK_* variables of every kind.
    /// </summary>
    private static string Describe(Lease lease, Dictionary<string, string> environment)
    {
        switch (lease)
        {
            case Permit permit:
                environment["LOCK_SLOT"] = permit.Slot.ToString(CultureInfo.InvariantCulture);
                environment["LOCK_LIMIT"] = permit.Limit.ToString(CultureInfo.InvariantCulture);
                return $"the permit (slot {permit.Slot}) of '{lease.Key}'";
            case RwLease rw:
                environment["LOCK_MODE"] = rw.Mode.ToString().ToLowerInvariant();
                return $"the {rw.Mode.ToString().ToLowerInvariant()} lease of '{lease.Key}'";
            case Leadership leadership:
                environment["LOCK_TERM"] = leadership.Term.ToString(CultureInfo.InvariantCulture);
                return $"the leadership (term {leadership.Term}) of '{lease.Key}'";
            default:
                return $"the lock '{lease.Key}'";
        }
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

    /// <summary>
    /// lockctl's handling of SIGINT, SIGTERM, SIGHUP and SIGQUIT through a whole run: before COMMAND starts, the first
    /// one cancels <see cref="Waiting"/> and keeps COMMAND from starting; once it has started, each goes to COMMAND's
    /// process group. The start and a signal's handling exclude each other, so a signal during the spawn waits for
    /// its end and then reaches COMMAND.
    /// </summary>
    private sealed class Signals : IDisposable
    {
        private readonly Lock _gate = new();
        private readonly CancellationTokenSource _waiting = new();
        private readonly PosixSignalRegistration[] _registrations;
        private ChildProcess? _child;
        private bool _interrupted;

        public Signals() => _registrations =
        [
            Register(PosixSignal.SIGINT, ChildProcess.SigInt),
            Register(PosixSignal.SIGTERM, ChildProcess.SigTerm),
            Register(PosixSignal.SIGHUP, ChildProcess.SigHup),
            Register(PosixSignal.SIGQUIT, ChildProcess.SigQuit),
        ];

        /// <summary>Cancelled by a signal that comes before COMMAND starts.</summary>
        public CancellationToken Waiting => _waiting.Token;

        /// <summary>True when a signal came before COMMAND started.</summary>
        public bool Interrupted
        {
            get
            {
                lock (_gate)
                {
                    return _interrupted;
                }
            }
        }

        /// <summary>Starts COMMAND with <paramref name="start"/> unless a signal came first (then: no child, errno 0).</summary>
        public (ChildProcess? Child, int Errno) Start(Func<(ChildProcess? Child, int Errno)> start)
        {
            lock (_gate)
            {
                if (_interrupted)
                {
                    return (null, 0);
                }

                var started = start();
                _child = started.Child;
                return started;
            }
        }

        public void Dispose()
        {
            foreach (var registration in _registrations)
            {
                registration.Dispose();
            }

            _waiting.Dispose();
        }

        private PosixSignalRegistration Register(PosixSignal signal, int number) =>
            PosixSignalRegistration.Create(signal, context =>
            {
                // Handled here: the runtime's default (terminate lockctl) would leave COMMAND running without the lock.
                context.Cancel = true;
                lock (_gate)
                {
                    if (_child is { } child)
                    {
                        child.SignalGroup(number);
                    }
                    else if (!_interrupted)
                    {
                        _interrupted = true;
                        _waiting.Cancel();
                    }
                }
            });
    }
}
