using System.Diagnostics;
using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// C closed loops of acquire -> release on random keys: the uncontended cost of a lock. With a rate, the loops start
/// their cycles on a shared schedule of evenly spaced slots instead of back to back, so that two builds can be compared
/// at the same load (a closed loop's CPU per cycle also depends on how fast it goes).
/// </summary>
internal static class CyclesMode
{
    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        var window = MeasureWindow.Scheduled(options.Warmup, options.Duration);
        // Loops stop by themselves at the window's end; this only cuts requests that hang past their timeout.
        using var hard = new CancellationTokenSource(options.Warmup + options.Duration + options.Timeout + TimeSpan.FromSeconds(2));
        await using var rss = RssSampler.Start(options.Pid);
        long connectionsBefore = context.Client.ConnectionsOpened;
        context.Progress($"cycles: {options.Concurrency} loops on {options.KeySpace} keys, warm-up {options.Warmup.TotalSeconds} s, measuring {options.Duration.TotalSeconds} s"
            + (options.Rate > 0 ? $", at most {options.Rate} cycles/s" : ""));

        var pacer = options.Rate > 0 ? new Pacer(options.Rate) : null;
        var loops = new Loop[options.Concurrency];
        var tasks = new Task[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            loops[i] = new Loop(context, window, pacer);
            tasks[i] = loops[i].RunAsync(hard.Token);
        }

        await Task.WhenAll(tasks);

        var acquire = new LatencyHistogram();
        var release = new LatencyHistogram();
        var acquireErrors = new StatusCounts();
        var releaseErrors = new StatusCounts();
        long cycles = 0;
        foreach (var loop in loops)
        {
            acquire.Add(loop.Acquire);
            release.Add(loop.Release);
            acquireErrors.Add(loop.AcquireErrors);
            releaseErrors.Add(loop.ReleaseErrors);
            cycles += loop.Cycles;
            loop.Dispose();
        }

        double seconds = window.Seconds;
        long connections = context.Client.ConnectionsOpened - connectionsBefore;
        var report = new Report(context);
        report.Line("loops", $"{new Figure("concurrency", options.Concurrency)} (keys: {new Figure("keySpace", options.KeySpace)} with prefix {context.RunPrefix}; rate {new Figure("rate", options.Rate)} cycles/s, 0 = unpaced)");
        report.Line("read/write lock", $"every acquire asks for {new Figure("rwMode", options.RwMode)}", show: options.RwMode is not null);
        ModeReports.AddWindow(report, seconds, options.Warmup);
        report.Line("cycles", $"{new Figure("cycles", cycles)} ({new Figure("cyclesPerSec", cycles / seconds, "0.0")}/s)");
        report.LatencyHeader();
        report.Latency("acquire (201)", "acquire", acquire);
        report.Latency("release (204)", "release", release);
        ModeReports.AddErrors(report, ("acquire errors", "acquireErrors", acquireErrors), ("release errors", "releaseErrors", releaseErrors));
        report.Line("connections opened", $"{new Figure("connectionsOpened", connections)}");
        ModeReports.AddRss(report, rss);
        return report;
    }

    // Slot n of the schedule starts at n / rate seconds after the first; a loop takes the next free slot and waits for it.
    // A loop that falls behind takes the slots it missed at once, so the rate holds on average as long as the service keeps up.
    private sealed class Pacer(int rate)
    {
        private readonly long _start = Stopwatch.GetTimestamp();
        private long _next = -1;

        public Task WaitTurnAsync(CancellationToken cancel)
        {
            long slot = Interlocked.Increment(ref _next);
            var due = TimeSpan.FromSeconds((double)slot / rate) - Stopwatch.GetElapsedTime(_start);
            return due > TimeSpan.Zero ? Task.Delay(due, cancel) : Task.CompletedTask;
        }
    }

    private sealed class Loop(BenchContext context, MeasureWindow window, Pacer? pacer) : IDisposable
    {
        private readonly Caller _caller = new(context.Client.Http);

        public LatencyHistogram Acquire { get; } = new();

        public LatencyHistogram Release { get; } = new();

        public StatusCounts AcquireErrors { get; } = new();

        public StatusCounts ReleaseErrors { get; } = new();

        public long Cycles { get; private set; }

        public async Task RunAsync(CancellationToken cancel)
        {
            await Task.Yield(); // let the caller start every loop before any of them runs
            var options = context.Options;
            var urls = context.Service.Urls;
            string prefix = context.RunPrefix;
            string query = LockUrls.AcquireQuery(options.TtlMs, 0);
            while (Outcome.Now() < window.End && !cancel.IsCancellationRequested)
            {
                if (pacer is not null)
                {
                    try
                    {
                        await pacer.WaitTurnAsync(cancel);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }

                int key = Random.Shared.Next(options.KeySpace);
                var acquire = await _caller.SendAsync(HttpMethod.Post, urls.Acquire(prefix, key, query), options.Timeout, readBody: true, cancel);
                if (acquire.IsCanceled)
                {
                    return;
                }

                bool counted = window.Contains(acquire.Finished);
                if (acquire.Status != 201)
                {
                    if (counted)
                    {
                        AcquireErrors.Add(acquire.Status);
                    }

                    await ModeReports.BackOffAsync(acquire, cancel);
                    continue;
                }

                if (counted)
                {
                    Acquire.Record(acquire.Elapsed);
                }

                var release = await _caller.SendAsync(HttpMethod.Delete, urls.Release(prefix, key, _caller.Token), options.Timeout, readBody: false, cancel);
                if (release.IsCanceled)
                {
                    return;
                }

                if (!window.Contains(release.Finished))
                {
                    continue;
                }

                if (release.Status == 204)
                {
                    Release.Record(release.Elapsed);
                    Cycles++;
                }
                else
                {
                    ReleaseErrors.Add(release.Status);
                    await ModeReports.BackOffAsync(release, cancel);
                }
            }
        }

        public void Dispose() => _caller.Dispose();
    }
}
