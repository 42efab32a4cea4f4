using System.Collections.Concurrent;
using System.Diagnostics;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// The published service as its own process (dotnet LockService.Api.dll), for what only a real process shows:
/// its exit code, its stderr, the stdout its shipped log sinks write. Killed with its tree when disposed.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly ConcurrentQueue<string> _stderr = new();

    private ServiceProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Collect(_stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => Collect(_stderr, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Lines written to stdout so far.</summary>
    public IReadOnlyCollection<string> Stdout => _stdout;

    /// <summary>Lines written to stderr so far.</summary>
    public IReadOnlyCollection<string> Stderr => _stderr;

    public static ServiceProcess Start(IDictionary<string, string>? environment = null, params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "LockService.Api.dll"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return new ServiceProcess(Process.Start(info)!);
    }

    /// <summary>Waits for the process to exit by itself (bounded) and returns its exit code, with its output read to the end.</summary>
    public async Task<int> ExitCodeAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private static void Collect(ConcurrentQueue<string> lines, string? line)
    {
        if (line is not null)
        {
            lines.Enqueue(line);
        }
    }
}
