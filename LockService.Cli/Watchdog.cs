using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace LockService.Cli;

/// <summary>
/// Stops COMMAND when lockctl itself dies (SIGKILL, the OOM killer, <c>timeout -k</c>): nothing else would, since
/// COMMAND runs in a process group of its own, and its lease would go unrenewed while it runs on. lockctl starts
/// itself again as this small helper (<c>lockctl __watchdog</c>), in a process group of its own so that a signal to
/// lockctl's group (as <c>timeout</c> sends) spares it, reading a pipe whose only writer is lockctl (close-on-exec, so
/// COMMAND does not hold it open). lockctl tells it COMMAND's group, then how long the lease surely lasts after each
/// renewal, then <c>done</c> when COMMAND has finished under the lock. The pipe's end without <c>done</c> means
/// lockctl is gone, whatever killed it (the kernel closes a dead process's descriptors): the helper sends SIGTERM to
/// COMMAND's group at once and SIGKILL after the grace, but no later than the last expiry lockctl knew of, so that
/// COMMAND is stopped while the lease is still its own.
/// </summary>
/// <remarks>
/// A helper rather than a parent-death signal: PR_SET_PDEATHSIG follows the thread that forked (a pool thread in
/// .NET, which may exit at any time), reaches only COMMAND and not its group, and cannot be set through posix_spawn.
/// The one moment it does not cover is between COMMAND's spawn and lockctl's write of its group to the pipe, the next
/// system call: a SIGKILL landing exactly there (lockctl preempted right after the spawn) leaves COMMAND as before.
/// </remarks>
internal sealed class Watchdog : IDisposable
{
    public const string Verb = "__watchdog";

    // The helper is a .NET start-up: a loaded machine may take seconds; past this, COMMAND is not run unguarded.
    private static readonly TimeSpan ReadyBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan GroupPoll = TimeSpan.FromMilliseconds(20);

    private readonly Lock _writing = new();
    private readonly FileStream _pipe;
    private readonly Task<bool> _ready;

    private Watchdog(int pipe, int ready)
    {
        _pipe = new FileStream(new SafeFileHandle(pipe, ownsHandle: true), FileAccess.Write, bufferSize: 0);
        _ready = Task.Run(() =>
        {
            using var answer = new FileStream(new SafeFileHandle(ready, ownsHandle: true), FileAccess.Read, bufferSize: 0);
            return answer.ReadByte() == 'r';
        });
    }

    /// <summary>Starts the helper with <paramref name="grace"/> as its SIGTERM-to-SIGKILL delay; the errno of a failed start.</summary>
    public static (Watchdog? Watchdog, int Errno) Start(TimeSpan grace)
    {
        var (pipeRead, pipeWrite, errno) = ChildProcess.Pipe();
        if (errno != 0)
        {
            return (null, errno);
        }

        var (readyRead, readyWrite, readyErrno) = ChildProcess.Pipe();
        if (readyErrno != 0)
        {
            ChildProcess.Close(pipeRead);
            ChildProcess.Close(pipeWrite);
            return (null, readyErrno);
        }

        string[] command = [.. Self(), Verb, ((long)grace.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)];
        var (_, spawnErrno) = ChildProcess.Spawn(command, new Dictionary<string, string>(), stdin: pipeRead, stdout: readyWrite);
        ChildProcess.Close(pipeRead);
        ChildProcess.Close(readyWrite);
        if (spawnErrno != 0)
        {
            ChildProcess.Close(pipeWrite);
            ChildProcess.Close(readyRead);
            return (null, spawnErrno);
        }

        return (new Watchdog(pipeWrite, readyRead), 0);
    }

    /// <summary>True once the helper watches (its signal handling in place); false when it died first or did not answer in time.</summary>
    public async Task<bool> ReadyAsync()
    {
        try
        {
            return await _ready.WaitAsync(ReadyBound);
        }
        catch (Exception ex) when (ex is TimeoutException or IOException)
        {
            return false;
        }
    }

    /// <summary>COMMAND's process group: what the helper stops if lockctl dies from now on.</summary>
    public void Guard(int group) => Send($"group {group}");

    /// <summary>How long the lease surely lasts from now (the latest SIGKILL if lockctl dies).</summary>
    public void HeldFor(TimeSpan left) => Send($"left {(long)left.TotalMilliseconds}");

    /// <summary>COMMAND finished under the lock (or lockctl stopped it itself): the helper exits without a signal.</summary>
    public void Done() => Send("done");

    public void Dispose() => _pipe.Dispose();

    /// <summary>The helper's side: <c>lockctl __watchdog GRACE_MS</c>, the pipe on stdin, one byte on stdout once ready.</summary>
    public static int Run(string[] args)
    {
        var grace = TimeSpan.FromMilliseconds(args.Length > 1 && long.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? ms : 10_000);

        // Signals meant for lockctl or COMMAND (a terminal's, a service manager's SIGTERM to everything) must not end the
        // helper first: it ends when lockctl does.
        using var registrations = new CompositeRegistration(
            [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT }
                .Select(signal => PosixSignalRegistration.Create(signal, context => context.Cancel = true))]);
        using (var ready = Console.OpenStandardOutput())
        {
            ready.WriteByte((byte)'r');
        }

        int? group = null;
        var until = long.MaxValue;
        using var input = new StreamReader(Console.OpenStandardInput());
        while (input.ReadLine() is { } line)
        {
            var parts = line.Split(' ');
            switch (parts[0])
            {
                case "done":
                    return 0;
                case "group" when int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var pid):
                    group = pid;
                    break;
                case "left" when long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var left):
                    until = Environment.TickCount64 + left;
                    break;
            }
        }

        if (group is not { } g || !ChildProcess.GroupAlive(g))
        {
            return 0;
        }

        // Whatever ended lockctl, the lease is no longer renewed: COMMAND stops now, and surely before the lease ends.
        var killAt = Math.Min(until, Environment.TickCount64 + (long)grace.TotalMilliseconds);
        ChildProcess.SignalGroup(g, ChildProcess.SigTerm);
        Console.Error.WriteLine($"lockctl: lockctl ended while the command ran; sent SIGTERM to the command's process group (SIGKILL in {Math.Max(0, killAt - Environment.TickCount64) / 1000.0:0.###} s at most).");
        while (ChildProcess.GroupAlive(g) && Environment.TickCount64 < killAt)
        {
            Thread.Sleep(GroupPoll);
        }

        if (ChildProcess.GroupAlive(g))
        {
            ChildProcess.SignalGroup(g, ChildProcess.SigKill);
        }

        return 0;
    }

    /// <summary>How to start this program again: the apphost (or single file) itself, or <c>dotnet lockctl.dll</c>.</summary>
    private static string[] Self()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("lockctl cannot find its own executable.");
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? [process, typeof(Watchdog).Assembly.Location] : [process];
    }

    private void Send(string line)
    {
        lock (_writing)
        {
            try
            {
                _pipe.Write(System.Text.Encoding.ASCII.GetBytes(line + "\n"));
            }
            catch (IOException)
            {
                // The helper is gone (EPIPE): lockctl itself still stops COMMAND on every outcome it lives to see.
            }
        }
    }
}
