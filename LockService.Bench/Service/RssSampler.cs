using System.Globalization;

namespace LockService.Bench.Service;

/// <summary>Samples the service's resident set size (VmRSS of /proc/PID/status) every 50 ms and keeps the peak.</summary>
internal sealed class RssSampler : IAsyncDisposable
{
    private readonly int _pid;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private double _peakMb;

    private RssSampler(int pid)
    {
        _pid = pid;
        _peakMb = ReadMb(pid) ?? 0;
        _loop = SampleAsync();
    }

    public double PeakMb => Volatile.Read(ref _peakMb);

    /// <summary>Starts sampling, or returns null without --pid; throws when the process cannot be read.</summary>
    public static RssSampler? Start(int? pid)
    {
        if (pid is not int id)
        {
            return null;
        }

        if (ReadMb(id) is null)
        {
            throw new SetupException($"--pid {id}: no readable /proc/{id}/status with VmRSS (is the service running on this machine?)");
        }

        return new RssSampler(id);
    }

    public static double? ReadMb(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var number = line.AsSpan(6).Trim();
                    if (number.EndsWith("kB", StringComparison.Ordinal))
                    {
                        number = number[..^2].Trim();
                    }

                    return long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb / 1024.0 : null;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>Takes one sample now (so that a mode can read the figure at the moment it cares about).</summary>
    public double? SampleNow()
    {
        double? mb = ReadMb(_pid);
        if (mb is double value && value > PeakMb)
        {
            Volatile.Write(ref _peakMb, value);
        }

        return mb;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task SampleAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                SampleNow();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
