using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// W requests waiting at once on a few held keys: what they cost the service (RSS at the peak), then whether
/// every one of them gets the lock in turn once the holders let go, and how long that drain takes.
/// </summary>
internal static class WaitersMode
{
    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        int waiters = options.Concurrency;
        // Every waiting request holds one connection, so one file descriptor here and one in the service.
        OpenFileLimit.Check(options.Pid, $"{waiters} waiting requests", waiters + options.Keys + 64, waiters + 64);

        await using var rss = RssSampler.Start(options.Pid);
        double? rssBefore = rss?.SampleNow();

        // Waiters get their own client, so that its connection count tells when all of them are connected
        // and the holders' releases never queue behind them for a connection.
        using var waiterClient = new LockClient(waiters + 16, options.ApiKey);
        var run = new Run(context, waiterClient);
        await run.HoldAllAsync();

        context.Progress($"waiters: {waiters} waiting requests on {options.Keys} keys, waitMs {options.WaitMs}");
        // Every waiter has its own timeout (waitMs + --timeout); this bounds the whole mode in case one hangs anyway.
        using var hard = new CancellationTokenSource(options.SettleTimeout + context.WaitingTimeout + TimeSpan.FromSeconds(5));
        long launched = Outcome.Now();
        var tasks = new Task[waiters];
        for (int i = 0; i < waiters; i++)
        {
            tasks[i] = run.WaiterAsync(i, hard.Token);
        }

        long settleDeadline = launched + Outcome.ToTicks(options.SettleTimeout);
        while (waiterClient.ConnectionsOpened + run.Finished < waiters && Outcome.Now() < settleDeadline)
        {
            await Task.Delay(10);
        }

        double connectMs = Outcome.ToMs(Outcome.Now() - launched);
        long connected = waiterClient.ConnectionsOpened;
        double? serverWaiting = null;
        string settledBy;
        if (context.Service.HasWaitingGauge)
        {
            settledBy = $"server's {ServiceMetrics.WaitingGauge} gauge";
            while (Outcome.Now() < settleDeadline)
            {
                serverWaiting = await ServiceMetrics.ReadWaitingAsync(context.Client.Http, context.Service.Urls.Metrics, options.Timeout);
                if (serverWaiting >= waiters - run.Finished)
                {
                    break;
                }

                await Task.Delay(50);
            }
        }
        else
        {
            settledBy = $"{options.SettleMs} ms after all connections opened (no {ServiceMetrics.WaitingGauge} gauge)";
            await Task.Delay(options.SettleMs);
        }

        double settledMs = Outcome.ToMs(Outcome.Now() - launched);
        double? rssAtPeak = rss?.SampleNow();
        context.Progress($"waiters: {connected} connected in {connectMs:0} ms, settled at {settledMs:0} ms; releasing the holders");
        await run.ReleaseAllAsync();
        await Task.WhenAll(tasks);

        var afterDrain = run.AcquiredAfterDrainStart();
        double drainMs = afterDrain.Count == 0 ? double.NaN : afterDrain.MaxMs;
        var report = new Report(context);
        report.Line("waiters", $"{new Figure("waiters", waiters)} on {new Figure("keys", options.Keys)} keys (prefix {context.RunPrefix}waiters-), waitMs {new Figure("waitMs", options.WaitMs)}");
        report.Line("connections", $"{new Figure("connectionsOpened", connected)} opened in {new Figure("connectMs", connectMs, "0")} ms");
        report.Line("in place", $"at {new Figure("settledMs", settledMs, "0")} ms, by {new Figure("settledBy", context.Service.HasWaitingGauge ? "gauge" : "fixed", Text: settledBy)}");
        report.Line("server reports waiting", $"{new Figure("serverWaiting", serverWaiting, "0")}", show: serverWaiting is not null);
        report.Line("completed (201 + 204)", $"{new Figure("completed", run.Completed)} of {waiters}");
        report.Line("failed", $"{new Figure("failed", waiters - run.Completed)}");
        report.Line("acquired before release", $"{new Figure("acquiredEarly", run.Early)} (should be 0)");
        report.Line(
            "drain",
            $"{new Figure("drainMs", drainMs, Figure.Ms)} ms from the holders' DELETEs to the last 201 ({new Figure("handoffsPerSec", afterDrain.Count / (drainMs / 1000), "0.0")} acquisitions/s)");
        report.LatencyHeader();
        report.Latency("201 after drain start", "acquiredAfterDrain", afterDrain);
        ModeReports.AddErrors(
            report,
            ("waiter errors", "waiterErrors", run.WaiterErrors),
            ("release errors", "releaseErrors", run.ReleaseErrors),
            ("holder release errors", "holderErrors", run.HolderErrors));
        report.Line("service RSS", $"before {new Figure("rssBeforeMb", rssBefore, "0.0")} MB, with all waiting {new Figure("rssAtPeakMb", rssAtPeak, "0.0")} MB", show: rss is not null);
        ModeReports.AddRss(report, rss);
        return report;
    }

    private sealed class Run(BenchContext context, LockClient waiterClient)
    {
        private readonly Lock _gate = new();
        private readonly string[] _keys = [.. Enumerable.Range(0, context.Options.Keys).Select(i => $"{context.RunPrefix}waiters-{i}")];
        private readonly string[] _holderTokens = new string[context.Options.Keys];
        private readonly double[] _acquiredAfterMs = [.. Enumerable.Repeat(double.NaN, context.Options.Concurrency)];
        private long _drainStart = long.MaxValue;
        private int _finished;
        private int _completed;
        private int _early;

        public StatusCounts WaiterErrors { get; } = new();

        public StatusCounts ReleaseErrors { get; } = new();

        public StatusCounts HolderErrors { get; } = new();

        /// <summary>Waiters that have their answer (of any kind).</summary>
        public int Finished => Volatile.Read(ref _finished);

        public int Completed => Volatile.Read(ref _completed);

        public int Early => Volatile.Read(ref _early);

        /// <summary>Takes every key for long enough to outlast the settle and a full wait of every waiter.</summary>
        public async Task HoldAllAsync()
        {
            var options = context.Options;
            long holdMs = (long)(options.SettleTimeout + context.WaitingTimeout).TotalMilliseconds + 60_000;
            string query = LockUrls.AcquireQuery(holdMs, 0);
            using var caller = new Caller(context.Client.Http);
            for (int i = 0; i < _keys.Length; i++)
            {
                var uri = context.Service.Urls.Acquire(_keys[i], query);
                var hold = await caller.SendAsync(HttpMethod.Post, uri, options.Timeout, readBody: true, CancellationToken.None);
                if (hold.Status != 201)
                {
                    throw new SetupException($"the holder of {_keys[i]} got {Outcome.Name(hold.Status)} from POST {uri}, expected 201");
                }

                _holderTokens[i] = new string(caller.Token);
            }
        }

        public async Task ReleaseAllAsync()
        {
            Volatile.Write(ref _drainStart, Outcome.Now());
            await Task.WhenAll(_keys.Select(async (key, i) =>
            {
                using var caller = new Caller(context.Client.Http);
                var release = await caller.SendAsync(HttpMethod.Delete, context.Service.Urls.Release(key, _holderTokens[i]), context.Options.Timeout, readBody: false, CancellationToken.None);
                if (release.Status != 204)
                {
                    lock (_gate)
                    {
                        HolderErrors.Add(release.Status);
                    }
                }
            }));
        }

        /// <summary>One waiter: wait for its key, and once it has it, release it for the next.</summary>
        public async Task WaiterAsync(int index, CancellationToken cancel)
        {
            await Task.Yield(); // start all waiters before any of them runs
            var options = context.Options;
            var urls = context.Service.Urls;
            string key = _keys[index % _keys.Length];
            using var caller = new Caller(waiterClient.Http, initialBufferSize: 512);
            var acquire = await caller.SendAsync(HttpMethod.Post, urls.Acquire(key, LockUrls.AcquireQuery(options.TtlMs, options.WaitMs)), context.WaitingTimeout, readBody: true, cancel);
            Interlocked.Increment(ref _finished);
            if (acquire.Status != 201)
            {
                lock (_gate)
                {
                    WaiterErrors.Add(acquire.Status);
                }

                return;
            }

            long drainStart = Volatile.Read(ref _drainStart);
            if (acquire.HeadersAt < drainStart)
            {
                Interlocked.Increment(ref _early);
            }
            else
            {
                _acquiredAfterMs[index] = Outcome.ToMs(acquire.HeadersAt - drainStart);
            }

            var release = await caller.SendAsync(HttpMethod.Delete, urls.Release(key, caller.Token), options.Timeout, readBody: false, cancel);
            if (release.Status == 204)
            {
                Interlocked.Increment(ref _completed);
                return;
            }

            lock (_gate)
            {
                ReleaseErrors.Add(release.Status);
            }
        }

        public SampleSet AcquiredAfterDrainStart()
        {
            var samples = new SampleSet();
            foreach (double ms in _acquiredAfterMs)
            {
                if (!double.IsNaN(ms))
                {
                    samples.Add(ms);
                }
            }

            return samples;
        }
    }
}
