using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace LockService.Tests.Clients;

/// <summary>lockctl as a process: <c>dotnet lockctl.dll ARGS --url URL</c>, its output captured (and readable while it runs).</summary>
internal sealed class LockCtlProcess : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private readonly StringBuilder _outputSoFar = new();
    private readonly Task<string> _output;
    private readonly Task<string> _error;

    private LockCtlProcess(Process process)
    {
        Process = process;
        _output = CaptureAsync(process.StandardOutput, _outputSoFar);
        _error = process.StandardError.ReadToEndAsync();
    }

    public Process Process { get; }

    public string Output => _output.Result;

    /// <summary>The lines lockctl has written to stdout so far (whole lines only), while it runs.</summary>
    public IReadOnlyList<string> LinesSoFar
    {
        get
        {
            string text;
            lock (_outputSoFar)
            {
                text = _outputSoFar.ToString();
            }

            return text.Split('\n')[..^1];
        }
    }

    public string Error => _error.Result;

    /// <summary>lockctl as a process, started through <paramref name="wrapper"/> (<c>timeout ...</c>) when given.</summary>
    public static LockCtlProcess Start(Uri url, IReadOnlyList<string> args, params string[] wrapper)
    {
        var info = new ProcessStartInfo(wrapper.Length > 0 ? wrapper[0] : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in wrapper.Skip(1).Concat(wrapper.Length > 0 ? ["dotnet"] : []).Concat(Arguments(url, args)))
        {
            info.ArgumentList.Add(argument);
        }

        return new LockCtlProcess(Process.Start(info)!);
    }

    /// <summary>
    /// lockctl in a pseudo-terminal of its own, as from an interactive shell: util-linux <c>script</c> runs
    /// <c>sh -c "dotnet lockctl.dll ARGS; THEN"</c> as the terminal's session leader, lockctl in the terminal's
    /// foreground process group; what <see cref="TypeAsync"/> writes is typed on the keyboard, and
    /// <see cref="Output"/> is all the terminal showed (lockctl's stderr included).
    /// </summary>
    public static LockCtlProcess StartInTerminal(Uri url, IReadOnlyList<string> args, string then = "")
    {
        var line = string.Join(' ', Arguments(url, args).Prepend("dotnet").Select(Quote)) + (then.Length > 0 ? $"; {then}" : "");
        var info = new ProcessStartInfo("script") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "--quiet", "--return", "--command", line, "/dev/null" })
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["SHELL"] = "/bin/sh";
        return new LockCtlProcess(Process.Start(info)!);

        static string Quote(string argument) => $"'{argument.Replace("'", "'\\''", StringComparison.Ordinal)}'";
    }

    /// <summary>Keys typed on the terminal of <see cref="StartInTerminal"/>.</summary>
    public async Task TypeAsync(string keys)
    {
        await Process.StandardInput.WriteAsync(keys);
        await Process.StandardInput.FlushAsync();
    }

    /// <summary><c>lockctl.dll ARGS --url URL</c>, the URL before any <c>--</c> so that it is lockctl's, not COMMAND's.</summary>
    private static IEnumerable<string> Arguments(Uri url, IReadOnlyList<string> args)
    {
        var separator = args.ToList().IndexOf("--");
        return [
            Path.Combine(AppContext.BaseDirectory, "lockctl.dll"),
            .. separator < 0 ? args : args.Take(separator),
            "--url", url.ToString(),
            .. separator < 0 ? [] : args.Skip(separator)];
    }

    public static async Task<LockCtlProcess> RunAsync(Uri url, IReadOnlyList<string> args)
    {
        var run = Start(url, args);
        await run.ExitAsync();
        return run;
    }

    public int ExitCode => Process.ExitCode;

    /// <summary>Waits (bounded) for lockctl to exit and its output to end; its exit code.</summary>
    public async Task<int> ExitAsync()
    {
        using var deadline = new CancellationTokenSource(Bound);
        try
        {
            await Process.WaitForExitAsync(deadline.Token);
            await Task.WhenAll(_output, _error).WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            KillAll();
            throw new TimeoutException($"lockctl did not exit within {Bound.TotalSeconds} s");
        }

        return Process.ExitCode;
    }

    /// <summary>True while process <paramref name="pid"/> runs (a zombie, dead but not yet reaped by its new parent, does not).</summary>
    public static bool Running(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Everything <paramref name="reader"/> gives until its end, kept in <paramref name="soFar"/> as it comes.</summary>
    private static async Task<string> CaptureAsync(StreamReader reader, StringBuilder soFar)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            lock (soFar)
            {
                soFar.Append(buffer, 0, read);
            }
        }

        lock (soFar)
        {
            return soFar.ToString();
        }
    }

    public void Dispose()
    {
        if (!Process.HasExited)
        {
            KillAll();
        }

        Process.Dispose();
    }

    /// <summary>
    /// Kills the process and everything under it, all found before any is killed: killing <c>script</c> hangs up
    /// its terminal, and the shell in it, dying of that, leaves its children to init before
    /// <c>Process.Kill(entireProcessTree: true)</c> (which lists a child's children only once it has killed the
    /// parent) gets to them.
    /// </summary>
    private void KillAll()
    {
        var parents = new Dictionary<int, List<int>>();
        foreach (var stat in Directory.EnumerateDirectories("/proc").Select(d => Path.Combine(d, "stat")))
        {
            try
            {
                // pid (comm) state ppid ...: comm may hold spaces and parentheses, so fields count from the last ')'.
                var text = File.ReadAllText(stat);
                var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
                var pid = int.Parse(text[..text.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
                var ppid = int.Parse(fields[1], CultureInfo.InvariantCulture);
                (parents.TryGetValue(ppid, out var children) ? children : parents[ppid] = []).Add(pid);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // Not a process, or one that ended while the list was being made.
            }
        }

        var tree = new List<int> { Process.Id };
        for (var i = 0; i < tree.Count; i++)
        {
            tree.AddRange(parents.GetValueOrDefault(tree[i]) ?? []);
        }

        foreach (var pid in tree)
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // Already gone.
            }
        }
    }
}
