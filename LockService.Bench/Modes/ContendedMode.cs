using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// C closed loops on one key, each acquire waiting in the server (waitMs), each release at once: how fast
/// and how fairly the lock passes between waiters, and what that costs Redis per acquisition. In the semaphores mode the
/// key is one semaphore of --limit places, and each loop takes and gives back a permit.
/// </summary>
internal static class ContendedMode
{
    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        await using var redis = await RedisCommandStats.ConnectAsync(options.Redis);
        await using var rss = RssSampler.Start(options.Pid);
        string key = context.RunPrefix + "contended";
        var window = new MeasureWindow();
        using var stop = new CancellationTokenSource();
        using var hard = new CancellationTokenSource();
        context.Progress($"contended: {options.Concurrency} loops on one key ({key}), waitMs {options.WaitMs}, warm-up {options.Warmup.TotalSeconds} s, measuring {options.Duration.TotalSeconds} s");

        var loops = new Loop[options.Concurrency];
        var tasks = new Task[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            loops[i] = new Loop(context, window, key);
            tasks[i] = loops[i].RunAsync(stop.Token, hard.Token);
        }

        // The window is opened and closed around the INFO snapshots, so that the commands counted and the
        // acquisitions counted belong to the same interval (give or take the requests in flight at its edges).
        await Task.Delay(options.Warmup);
        window.Open(Outcome.Now());
        var before = await redis.SnapshotAsync();
        await Task.Delay(options.Duration);
        var after = await redis.SnapshotAsync();
        window.Close(Outcome.Now());

        // Outstanding waits are cancelled; a loop that holds the lock still releases it, within its timeout.
        await stop.CancelAsync();
        hard.CancelAfter(options.Timeout + TimeSpan.FromSeconds(2));
        await Task.WhenAll(tasks);

        var wait = new LatencyHistogram();
        var release = new LatencyHistogram();
        var acquireErrors = new StatusCounts();
        var releaseErrors = new StatusCounts();
        long acquisitions = 0, conflicts = 0, minPerLoop = long.MaxValue, maxPerLoop = 0;
        foreach (var loop in loops)
        {
            wait.Add(loop.Wait);
            release.Add(loop.Release);
            acquireErrors.Add(loop.AcquireErrors);
            releaseErrors.Add(loop.ReleaseErrors);
            acquisitions += loop.Acquisitions;
            conflicts += loop.Conflicts;
            minPerLoop = Math.Min(minPerLoop, loop.Acquisitions);
            maxPerLoop = Math.Max(maxPerLoop, loop.Acquisitions);
            loop.Dispose();
        }

        var delta = RedisCommandStats.Delta(before, after);
        long topLevel = RedisCommandStats.TopLevel(delta);
        long total = delta.Values.Sum();
        double seconds = window.Seconds;
        double PerAcquisition(long calls) => acquisitions == 0 ? double.NaN : (double)calls / acquisitions;
        double fairness = maxPerLoop == 0 ? double.NaN : (double)minPerLoop / maxPerLoop;

        var report = new Report(context);
        report.Line("loops", $"{new Figure("concurrency", options.Concurrency)} on key {key}, waitMs {new Figure("waitMs", options.WaitMs)}");
        report.Line("semaphore limit", $"{new Figure("limit", options.Limit)}", show: options.Limit is not null);
        ModeReports.AddWindow(report, seconds, options.Warmup);
        report.Line("acquisitions", $"{new Figure("acquisitions", acquisitions)} ({new Figure("acquisitionsPerSec", acquisitions / seconds, "0.0")}/s)");
        report.Line("409 (wait ran out)", $"{new Figure("conflicts409", conflicts)}");
        report.LatencyHeader();
        report.Latency("wait (acquire -> 201)", "wait", wait);
        report.Latency("release (204)", "release", release);
        report.Line("per-loop acquisitions", $"min {new Figure("perLoopMin", minPerLoop)}, max {new Figure("perLoopMax", maxPerLoop)}, min/max {new Figure("fairnessMinMax", fairness, "0.000")}");
        report.Line(
            "redis calls/acquisition",
            $"top-level {new Figure("redisTopLevelCallsPerAcq", PerAcquisition(topLevel), "0.00")} ({new Figure("redisTopLevelCalls", topLevel)} calls), total {new Figure("redisTotalCallsPerAcq", PerAcquisition(total), "0.00")} ({new Figure("redisTotalCalls", total)} calls)");
        report.Line("redis calls in window", $"{new Figure("redisCalls", delta)}");
        report.Note($"  ({new Figure("redisCallsDefinition", RedisCommandStats.Definition)}; Redis at {options.Redis})");
        ModeReports.AddErrors(report, ("acquire errors", "acquireErrors", acquireErrors), ("release errors", "releaseErrors", releaseErrors));
        ModeReports.AddRss(report, rss);
        return report;
    }

    private sealed class Loop(BenchContext context, MeasureWindow window, string key) : IDisposable
    {
        private readonly Caller _caller = new(context.Client.Http);

        public LatencyHistogram Wait { get; } = new();

        public LatencyHistogram Release { get; } = new();

        public StatusCounts AcquireErrors { get; } = new();

        public StatusCounts ReleaseErrors { get; } = new();

        public long Acquisitions { get; private set; }

        public long Conflicts { get; private set; }

        public async Task RunAsync(CancellationToken stop, CancellationToken hard)
        {
            await Task.Yield();
            var options = context.Options;
            var urls = context.Service.Urls;
            // One key, so one acquire URI for the whole run.
            var acquireUri = urls.Acquire(key, LockUrls.AcquireQuery(options.TtlMs, options.WaitMs));
            while (!stop.IsCancellationRequested)
            {
                var acquire = await _caller.SendAsync(HttpMethod.Post, acquireUri, context.WaitingTimeout, readBody: true, stop);
                if (acquire.IsCanceled)
                {
                    return;
                }

                bool counted = window.Contains(acquire.Finished);
                if (acquire.Status != 201)
                {
                    if (counted && acquire.Status == 409)
                    {
                        Conflicts++;
                    }
                    else if (counted)
                    {
                        AcquireErrors.Add(acquire.Status);
                    }

                    await ModeReports.BackOffAsync(acquire, stop);
                    continue;
                }

                if (counted)
                {
                    Acquisitions++;
                    Wait.Record(acquire.Elapsed);
                }

                // The release is not cut by the end of the run: a lock left held would stall the other loops.
                var release = await _caller.SendAsync(HttpMethod.Delete, urls.Release(key, _caller.Token), options.Timeout, readBody: false, hard);
                if (!window.Contains(release.Finished) || release.IsCanceled)
                {
                    continue;
                }

                if (release.Status == 204)
                {
                    Release.Record(release.Elapsed);
                }
                else
                {
                    ReleaseErrors.Add(release.Status);
                }
            }
        }

        public void Dispose() => _caller.Dispose();
    }
}
