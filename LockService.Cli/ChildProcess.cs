using System.Collections;
using System.Runtime.InteropServices;

namespace LockService.Cli;

/// <summary>
/// COMMAND as lockctl runs it: started with posix_spawnp (no shell) as the leader of its own process group, so that a
/// loss can signal the command and everything it started at once; stdin, stdout and stderr inherited. Process.Start
/// cannot make a new process group, hence libc directly (Linux signal numbers).
/// </summary>
internal sealed unsafe partial class ChildProcess
{
    public const int SigHup = 1, SigInt = 2, SigQuit = 3, SigKill = 9, SigTerm = 15;

    private const short PosixSpawnSetPgroup = 0x02, PosixSpawnSetSigDef = 0x04, PosixSpawnSetSigMask = 0x08;
    private const int Eintr = 4, Esrch = 3, Enoent = 2, Eacces = 13;

    // The child starts with every signal lockctl's runtime handles or ignores back at its default (the runtime ignores
    // SIGPIPE, which `cmd | head` needs) and nothing blocked.
    private static readonly int[] DefaultSignals = [SigHup, SigInt, SigQuit, 10, 12, 13, 14, SigTerm, 17, 20, 21, 22];

    private ChildProcess(int pid) => Pid = pid;

    /// <summary>The command's pid, which is also its process group's id.</summary>
    public int Pid { get; }

    /// <summary>Starts <paramref name="command"/> with the current environment plus <paramref name="environment"/>.</summary>
    /// <returns>The child, or the errno of a failed spawn (ENOENT, EACCES, ...).</returns>
    public static (ChildProcess? Child, int Errno) Start(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> environment)
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
        try
        {
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
                var error = posix_spawnp(out var pid, command[0], 0, (nint)attr, argv, envp);
                return error == 0 ? (new ChildProcess(pid), 0) : (null, error);
            }
            finally
            {
                _ = posix_spawnattr_destroy((nint)attr);
            }
        }
        finally
        {
            strings.ForEach(Marshal.FreeCoTaskMem);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigset);
        }
    }

    /// <summary>A message for a failed spawn, and the exit code a shell would give.</summary>
    public static (string Message, int ExitCode) Describe(string command, int errno) => errno switch
    {
        Enoent => ($"{command}: command not found", ExitCodes.CommandNotFound),
        Eacces => ($"{command}: permission denied", ExitCodes.CommandNotExecutable),
        _ => ($"{command}: could not be started ({Marshal.GetPInvokeErrorMessage(errno)})", ExitCodes.CommandNotExecutable),
    };

    /// <summary>Waits (on a thread of its own: waitpid blocks) for the command to exit: its code, or 128+N for signal N.</summary>
    public Task<int> WaitForExitAsync()
    {
        var exited = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            while (true)
            {
                if (waitpid(Pid, out var status, 0) == Pid)
                {
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

    /// <summary>Sends <paramref name="signal"/> to the command's whole process group.</summary>
    public void SignalGroup(int signal) => _ = kill(-Pid, signal);

    /// <summary>True while any process of the command's group is alive (the leader may have exited before its children).</summary>
    public bool GroupAlive() => kill(-Pid, 0) == 0 || Marshal.GetLastPInvokeError() != Esrch;

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

    [LibraryImport("libc")]
    private static partial int sigemptyset(nint set);

    [LibraryImport("libc")]
    private static partial int sigaddset(nint set, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
