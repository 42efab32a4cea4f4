using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>C closed loops of acquire -> release on random keys: the uncontended cost of a lock.</summary>
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
        context.Progress($"cycles: {options.Concurrency} loops on {options.KeySpace} keys, warm-up {options.Warmup.TotalSeconds} s, measuring {options.Duration.TotalSeconds} s");

        var loops = new Loop[options.Concurrency];
        var tasks = new Task[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            loops[i] = new Loop(context, window);
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
        report.Line("loops", $"{new Figure("concurrency", options.Concurrency)} (keys: {new Figure("keySpace", options.KeySpace)} with prefix {context.RunPrefix})");
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

    private sealed class Loop(BenchContext context, MeasureWindow window) : IDisposable
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
