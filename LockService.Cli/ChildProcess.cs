using System.Collections;
using System.Runtime.InteropServices;

namespace LockService.Cli;

/// <summary>
/// COMMAND as lockctl runs it: started with posix_spawnp (no shell) as the leader of its own process group, so that a
/// loss can signal the command and everything it started at once; stdin, stdout and stderr inherited. Process.Start
/// cannot make a new process group, hence libc directly (Linux signal numbers).
/// </summary>
/// <remarks>
/// In an interactive shell lockctl is the terminal's foreground job, and a group of COMMAND's own would be in the
/// background of the terminal: stopped (SIGTTIN) at its first read of the keyboard. So, as a job-control shell does,
/// lockctl then makes COMMAND's group the terminal's foreground while it runs (the keyboard, Ctrl-C and Ctrl-Z are
/// COMMAND's), stops and continues with it when the terminal stops it, and takes the terminal back once it has
/// exited. When stdin is not a terminal (CI, cron, a pipe) none of this happens.
/// </remarks>
internal sealed unsafe partial class ChildProcess
{
    public const int SigHup = 1, SigInt = 2, SigQuit = 3, SigKill = 9, SigTerm = 15;

    private const int SigCont = 18, SigTstp = 20, SigTtin = 21, SigTtou = 22;
    private const short PosixSpawnSetPgroup = 0x02, PosixSpawnSetSigDef = 0x04, PosixSpawnSetSigMask = 0x08;
    private const int Eintr = 4, Esrch = 3, Enoent = 2, Eacces = 13;
    private const int Wuntraced = 2, SigBlock = 0, SigSetMask = 2, Stdin = 0, OCloexec = 0x80000;

    // glibc's sigset_t: 1024 bits.
    private const int SigsetBytes = 128;

    // The child starts with every signal lockctl's runtime handles or ignores back at its default (the runtime ignores
    // SIGPIPE, which `cmd | head` needs) and nothing blocked.
    private static readonly int[] DefaultSignals = [SigHup, SigInt, SigQuit, 10, 12, 13, 14, SigTerm, 17, SigTstp, SigTtin, SigTtou];

    private readonly TextWriter _error;

    // Stdin is lockctl's controlling terminal: lockctl hands it to COMMAND and follows COMMAND's stops (see FollowStop).
    private bool _jobControl;

    private ChildProcess(int pid, TextWriter error) => (Pid, _error) = (pid, error);

    /// <summary>The command's pid, which is also its process group's id.</summary>
    public int Pid { get; }

    /// <summary>
    /// Starts <paramref name="command"/> with the current environment plus <paramref name="environment"/>, giving it the
    /// terminal when lockctl is the terminal's foreground job. A problem with the terminal is one line on
    /// <paramref name="error"/>, and the command runs on without it, as it would elsewhere.
    /// </summary>
    /// <param name="spawned">Called with the command's pid (its group's id) as soon as it exists.</param>
    /// <returns>The child, or the errno of a failed spawn (ENOENT, EACCES, ...).</returns>
    public static (ChildProcess? Child, int Errno) Start(
        IReadOnlyList<string> command, IReadOnlyDictionary<string, string> environment, TextWriter error, Action<int> spawned)
    {
        var (pid, errno) = Spawn(command, environment, stdin: -1, stdout: -1);
        if (errno != 0)
        {
            return (null, errno);
        }

        // First of all, before the terminal's system calls: whoever must know the command's group (the watchdog) knows it.
        spawned(pid);
        var child = new ChildProcess(pid, error);
        child.TakeTerminal();
        return (child, 0);
    }

    /// <summary>
    /// Starts <paramref name="command"/> as the leader of a process group of its own, with the signal defaults above and
    /// the current environment plus <paramref name="environment"/>; <paramref name="stdin"/> and
    /// <paramref name="stdout"/>, unless -1, become its standard input and output (everything else is inherited, but
    /// for the close-on-exec descriptors).
    /// </summary>
    /// <returns>The pid, or the errno of a failed spawn.</returns>
    public static (int Pid, int Errno) Spawn(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> environment, int stdin, int stdout)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            variables[(string)entry.Key] = (string?)entry.Value ?? "";
        }

        foreach (var (name, value) in environment)
        {
            variables[name] = value;
        }

        var strings = new List<nint>();
        var attr = NativeMemory.AllocZeroed(1024);
        var sigset = NativeMemory.AllocZeroed(256);
        var actions = NativeMemory.AllocZeroed(1024);
        try
        {
            Check(posix_spawn_file_actions_init((nint)actions));
            foreach (var (from, to) in new[] { (stdin, 0), (stdout, 1) })
            {
                if (from >= 0)
                {
                    Check(posix_spawn_file_actions_adddup2((nint)actions, from, to));
                }
            }

            var argv = NullTerminated(command, strings);
            var envp = NullTerminated([.. variables.Select(v => $"{v.Key}={v.Value}")], strings);
            Check(posix_spawnattr_init((nint)attr));
            try
            {
                Check(posix_spawnattr_setflags((nint)attr, PosixSpawnSetPgroup | PosixSpawnSetSigDef | PosixSpawnSetSigMask));
                Check(posix_spawnattr_setpgroup((nint)attr, 0));
                Check(sigemptyset((nint)sigset));
                Check(posix_spawnattr_setsigmask((nint)attr, (nint)sigset));
                foreach (var signal in DefaultSignals)
                {
                    Check(sigaddset((nint)sigset, signal));
                }

                Check(posix_spawnattr_setsigdefault((nint)attr, (nint)sigset));
                var errno = posix_spawnp(out var pid, command[0], (nint)actions, (nint)attr, argv, envp);
                return errno != 0 ? (0, errno) : (pid, 0);
            }
            finally
            {
                _ = posix_spawnattr_destroy((nint)attr);
            }
        }
        finally
        {
            _ = posix_spawn_file_actions_destroy((nint)actions);
            strings.ForEach(Marshal.FreeCoTaskMem);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigset);
            NativeMemory.Free(actions);
        }
    }

    /// <summary>A pipe whose both ends are closed on exec: no command inherits them unless given one as stdin or stdout.</summary>
    /// <returns>The read and the write end, or the errno of the failure.</returns>
    public static (int Read, int Write, int Errno) Pipe()
    {
        var fds = stackalloc int[2];
        return pipe2(fds, OCloexec) == 0 ? (fds[0], fds[1], 0) : (-1, -1, Marshal.GetLastPInvokeError());
    }

    /// <summary>Closes a descriptor this process no longer needs (the child's end of a pipe, once the child has it).</summary>
    public static void Close(int fd) => _ = close(fd);

    /// <summary>Sends <paramref name="signal"/> to the process group <paramref name="group"/>.</summary>
    public static void SignalGroup(int group, int signal) => _ = kill(-group, signal);

    /// <summary>True while any process of the group <paramref name="group"/> is alive.</summary>
    public static bool GroupAlive(int group) => kill(-group, 0) == 0 || Marshal.GetLastPInvokeError() != Esrch;

    /// <summary>A message for a failed spawn, and the exit code a shell would give.</summary>
    public static (string Message, int ExitCode) Describe(string command, int errno) => errno switch
    {
        Enoent => ($"{command}: command not found", ExitCodes.CommandNotFound),
        Eacces => ($"{command}: permission denied", ExitCodes.CommandNotExecutable),
        _ => ($"{command}: could not be started ({Marshal.GetPInvokeErrorMessage(errno)})", ExitCodes.CommandNotExecutable),
    };

    /// <summary>
    /// Waits (on a thread of its own: waitpid blocks) for the command to exit: its code, or 128+N for signal N. Call
    /// <see cref="ReturnTerminal"/> after it.
    /// </summary>
    public Task<int> WaitForExitAsync()
    {
        var exited = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            while (true)
            {
                if (waitpid(Pid, out var status, _jobControl ? Wuntraced : 0) == Pid)
                {
                    if ((status & 0xff) == 0x7f)
                    {
                        FollowStop((status >> 8) & 0xff);
                        continue;
                    }

                    var signal = status & 0x7f;
                    exited.SetResult(signal == 0 ? (status >> 8) & 0xff : 128 + signal);
                    return;
                }

                if (Marshal.GetLastPInvokeError() != Eintr)
                {
                    exited.SetResult(ExitCodes.Unavailable);
                    return;
                }
            }
        })
        { IsBackground = true, Name = "waitpid" };
        thread.Start();
        return exited.Task;
    }

    /// <summary>
    /// Once the command has exited (its group may live on), gives the terminal back to lockctl's group if the command's
    /// group has it, as a shell takes it back from a finished job: lockctl's caller (a script, or the next command of a
    /// shell in the same terminal) can read the keyboard again. Anyone else's foreground (a shell that took the terminal
    /// back while lockctl was stopped) is left alone.
    /// </summary>
    public void ReturnTerminal()
    {
        if (_jobControl && tcgetpgrp(Stdin) == Pid && SetForeground(getpgrp(), blockSigttou: true) is var errno and not 0)
        {
            _error.WriteLine($"lockctl: could not take the terminal back from the command ({Marshal.GetPInvokeErrorMessage(errno)}).");
        }
    }

    /// <summary>Sends <paramref name="signal"/> to the command's whole process group.</summary>
    public void SignalGroup(int signal) => SignalGroup(Pid, signal);

    /// <summary>True while any process of the command's group is alive (the leader may have exited before its children).</summary>
    public bool GroupAlive() => GroupAlive(Pid);

    /// <summary>
    /// When stdin is lockctl's controlling terminal (tcgetpgrp answers ENOTTY for any other file or terminal) and
    /// lockctl's group its foreground (an interactive shell's foreground job), makes the command's group the foreground,
    /// so that it reads the keyboard and the terminal's Ctrl-C, Ctrl-\ and Ctrl-Z go to it, not to lockctl.
    /// </summary>
    private void TakeTerminal()
    {
        var foreground = isatty(Stdin) == 1 ? tcgetpgrp(Stdin) : -1;
        if (foreground == -1)
        {
            return;
        }

        _jobControl = true;
        if (foreground == getpgrp() && GiveTerminal())
        {
            // A read of the terminal between the spawn and tcsetpgrp stopped the command (SIGTTIN): it reads again now.
            // Otherwise a SIGCONT does nothing.
            Continue();
        }
    }

    /// <summary>
    /// The terminal stopped the command: Ctrl-Z (SIGTSTP), or a read (SIGTTIN) or write (SIGTTOU) of it from the
    /// background. The shell sees lockctl as its job, so lockctl stops likewise, giving the terminal back first, and the
    /// shell has its prompt again; continued (fg or bg), it continues the command, with the terminal when lockctl is the
    /// foreground again. A SIGSTOP from elsewhere is left to whoever sent it.
    /// </summary>
    private void FollowStop(int signal)
    {
        if (signal is not (SigTstp or SigTtin or SigTtou))
        {
            return;
        }

        // Unless the command only read or wrote the terminal in the background of lockctl's own foreground (it started
        // while lockctl was in the background, and lockctl has been brought to the foreground since): it just needs the
        // terminal.
        if (signal == SigTstp || tcgetpgrp(Stdin) != getpgrp())
        {
            ReturnTerminal();

            // To this very thread, so that the stop comes before raise returns. In a process group without a job-control
            // shell above it (orphaned), the kernel discards it, and the command goes on.
            if (raise(signal) != 0)
            {
                _error.WriteLine($"lockctl: could not stop with the command ({Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}).");
            }
        }

        if (tcgetpgrp(Stdin) == getpgrp())
        {
            _ = GiveTerminal();
        }

        Continue();
    }

    /// <summary>
    /// Hands the terminal over, SIGTTOU not blocked: had lockctl lost the foreground since it looked (a Ctrl-Z in
    /// between, then bg), SIGTTOU stops it until it is the foreground again, rather than it taking the terminal from the
    /// shell.
    /// </summary>
    private bool GiveTerminal()
    {
        if (SetForeground(Pid, blockSigttou: false) is var errno and not 0)
        {
            _error.WriteLine($"lockctl: could not give the terminal to the command ({Marshal.GetPInvokeErrorMessage(errno)}); it runs in the background of the terminal.");
            return false;
        }

        return true;
    }

    private void Continue()
    {
        if (kill(-Pid, SigCont) != 0)
        {
            _error.WriteLine($"lockctl: could not continue the command ({Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}).");
        }
    }

    /// <summary>
    /// tcsetpgrp on stdin, with SIGTTOU blocked on this thread when lockctl's group is in the background (while the
    /// command has the terminal): the call would stop lockctl.
    /// </summary>
    /// <returns>0, or the errno of the failure.</returns>
    private int SetForeground(int group, bool blockSigttou)
    {
        if (!blockSigttou)
        {
            return tcsetpgrp(Stdin, group) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }

        var block = stackalloc byte[SigsetBytes];
        var saved = stackalloc byte[SigsetBytes];
        var errno = sigemptyset((nint)block) != 0 || sigaddset((nint)block, SigTtou) != 0
            ? Marshal.GetLastPInvokeError()
            : pthread_sigmask(SigBlock, (nint)block, (nint)saved);
        if (errno != 0)
        {
            return errno;
        }

        errno = tcsetpgrp(Stdin, group) == 0 ? 0 : Marshal.GetLastPInvokeError();
        var restored = pthread_sigmask(SigSetMask, (nint)saved, 0);
        if (restored != 0)
        {
            _error.WriteLine($"lockctl: could not unblock SIGTTOU ({Marshal.GetPInvokeErrorMessage(restored)}).");
        }

        return errno;
    }

    private static void Check(int result)
    {
        if (result != 0)
        {
            throw new InvalidOperationException($"posix_spawn setup failed ({result}).");
        }
    }

    private static nint NullTerminated(IReadOnlyList<string> values, List<nint> owned)
    {
        var array = (nint*)Marshal.AllocCoTaskMem((values.Count + 1) * sizeof(nint));
        owned.Add((nint)array);
        for (var i = 0; i < values.Count; i++)
        {
            array[i] = Marshal.StringToCoTaskMemUTF8(values[i]);
            owned.Add(array[i]);
        }

        array[values.Count] = 0;
        return (nint)array;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawnp(out int pid, string file, nint fileActions, nint attr, nint argv, nint envp);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_init(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_destroy(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_adddup2(nint actions, int fd, int newFd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_init(nint attr);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_destroy(nint attr);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setflags(nint attr, short flags);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setpgroup(nint attr, int pgroup);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setsigmask(nint attr, nint sigset);

    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setsigdefault(nint attr, nint sigset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sigemptyset(nint set);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sigaddset(nint set, int signal);

    [LibraryImport("libc")]
    private static partial int pthread_sigmask(int how, nint set, nint oldSet);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int isatty(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcgetpgrp(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcsetpgrp(int fd, int pgrp);

    [LibraryImport("libc")]
    private static partial int getpgrp();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int raise(int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
