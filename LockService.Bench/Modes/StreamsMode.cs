using System.Text;
using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// C locks held by streams at once, on distinct keys of one instance: what they cost the service (RSS), whether
/// every stream is renewed while held, and whether closing them frees their keys.
/// </summary>
internal static class StreamsMode
{
    /// <summary>Keys checked after the close: enough to catch a release that did not happen, few enough to poll.</summary>
    private const int SampleSize = 100;

    /// <summary>The close releases at once; this bounds the polling of the sample.</summary>
    private static readonly TimeSpan FreeDeadline = TimeSpan.FromSeconds(10);

    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        int count = options.Concurrency;
        OpenFileLimit.Check(options.Pid, $"{count} streams", count + 64, count + 64);
        await using var rss = RssSampler.Start(options.Pid);
        double? rssBefore = rss?.SampleNow();

        // Streams get their own client: disposing a response must close its connection at once, and the
        // inspections after the close must not queue behind them for a connection.
        using var streamClient = new LockClient(count + 16, options.ApiKey, closeUnfinished: true);
        var run = new Run(context, streamClient);
        using var hold = new CancellationTokenSource();
        context.Progress($"streams: opening {count} streams (ttlMs {options.TtlMs}) on distinct keys");
        long launched = Outcome.Now();
        var tasks = new Task[count];
        for (int i = 0; i < count; i++)
        {
            tasks[i] = run.HoldAsync(i, hold.Token);
        }

        // Every open has its own timeout (--settle-timeout): this ends when each has its acquired event or has failed.
        while (run.Acquired + run.Failed < count)
        {
            await Task.Delay(10);
        }

        double openMs = run.Acquired == 0 ? double.NaN : Outcome.ToMs(run.LastAcquiredAt - launched);
        double? rssOpen = rss?.SampleNow();
        context.Progress($"streams: {run.Acquired} acquired in {openMs:0} ms; holding them {options.Duration.TotalSeconds} s");
        await Task.Delay(options.Duration);
        double? rssHeld = rss?.SampleNow();
        int stillOpen = run.Acquired - run.Dropped - run.LostCount;

        long closing = Outcome.Now();
        await hold.CancelAsync();
        await Task.WhenAll(tasks);
        double closeMs = Outcome.ToMs(Outcome.Now() - closing);
        var (sampled, free) = context.Service.CanInspect ? await run.CheckFreeAsync(closing) : (0, 0);
        double? freeMs = context.Service.CanInspect && sampled > 0 && free == sampled ? Outcome.ToMs(run.SampleFreeAt - closing) : null;

        var report = new Report(context);
        report.Line("streams", $"{new Figure("streams", count)} on distinct keys (prefix {context.RunPrefix}streams-), ttlMs {new Figure("ttlMs", options.TtlMs)}");
        report.Line("acquired", $"{new Figure("acquired", run.Acquired)} of {count}, the last {new Figure("openMs", openMs, "0")} ms after the first was sent");
        report.Line("held", $"{new Figure("holdSec", options.Duration.TotalSeconds, "0.###")} s after the opens ended; {new Figure("openAtEnd", stillOpen)} still open at the end");
        report.Line("renewals seen", $"{new Figure("renewals", run.Renewals)} (a comment every ttlMs/3 per stream)");
        report.Line("lost events", $"{new Figure("lost", run.Lost, Text: run.LostCount == 0 ? "none" : null)}");
        report.Line("dropped", $"{new Figure("dropped", run.Dropped)} (ended by the service without event: lost)");
        ModeReports.AddErrors(
            report,
            ("stream open errors", "openErrors", run.OpenErrors),
            ("inspect errors", "inspectErrors", run.InspectErrors));
        report.Line("closed", $"all in {new Figure("closeMs", closeMs, "0")} ms (the client's disposes)");
        report.Line(
            "sample free after close",
            $"{new Figure("sampleFree", context.Service.CanInspect ? free : null)} of {new Figure("sampleSize", context.Service.CanInspect ? sampled : null)} keys, all seen free by {new Figure("sampleFreeMs", freeMs, "0")} ms after the close began (polled every 10 ms)",
            show: context.Service.CanInspect);
        report.Line(
            "service RSS",
            $"before {new Figure("rssBeforeMb", rssBefore, "0.0")} MB, all open {new Figure("rssOpenMb", rssOpen, "0.0")} MB, end of hold {new Figure("rssHeldMb", rssHeld, "0.0")} MB",
            show: rss is not null);
        ModeReports.AddRss(report, rss);
        return report;
    }

    private sealed class Run(BenchContext context, LockClient streamClient)
    {
        private readonly Lock _gate = new();
        private readonly string _prefix = context.RunPrefix + "streams-";
        private readonly string _query = LockUrls.AcquireQuery(context.Options.TtlMs, 0);
        private readonly bool[] _held = new bool[context.Options.Concurrency];
        private readonly Dictionary<string, long> _lost = [];
        private int _acquired;
        private int _failed;
        private int _dropped;
        private int _lostCount;
        private long _renewals;
        private long _lastAcquiredAt;
        private long _sampleFreeAt;

        public StatusCounts OpenErrors { get; } = new();

        public StatusCounts InspectErrors { get; } = new();

        public IReadOnlyDictionary<string, long> Lost => _lost;

        public int Acquired => Volatile.Read(ref _acquired);

        public int Failed => Volatile.Read(ref _failed);

        public int Dropped => Volatile.Read(ref _dropped);

        public int LostCount => Volatile.Read(ref _lostCount);

        public long Renewals => Interlocked.Read(ref _renewals);

        public long LastAcquiredAt => Interlocked.Read(ref _lastAcquiredAt);

        /// <summary>When the last key of the sample was seen free.</summary>
        public long SampleFreeAt => Interlocked.Read(ref _sampleFreeAt);

        /// <summary>One stream: open it, then read its renewals until the hold ends (or the service ends it).</summary>
        public async Task HoldAsync(int index, CancellationToken hold)
        {
            await Task.Yield(); // start all streams before any of them runs
            var uri = context.Service.Urls.Acquire(_prefix, index, _query);
            var (open, stream) = await HeldStream.OpenAsync(streamClient.Http, uri, context.Options.SettleTimeout, hold);
            if (stream is null)
            {
                lock (_gate)
                {
                    OpenErrors.Add(open.Status);
                }

                Interlocked.Increment(ref _failed);
                return;
            }

            using (stream)
            {
                _held[index] = true;
                InterlockedMax(ref _lastAcquiredAt, open.Finished);
                Interlocked.Increment(ref _acquired);
                try
                {
                    while (await stream.ReadAsync(hold) is StreamItem item)
                    {
                        if (item.IsComment)
                        {
                            Interlocked.Increment(ref _renewals);
                        }
                        else if (item.Event == "lost")
                        {
                            string reason = LockJson.ReadString(Encoding.UTF8.GetBytes(item.Data), "reason"u8) ?? "(none)";
                            lock (_gate)
                            {
                                _lost[reason] = _lost.GetValueOrDefault(reason) + 1;
                            }

                            Interlocked.Increment(ref _lostCount);
                            return;
                        }
                    }

                    Interlocked.Increment(ref _dropped);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
                {
                    if (!hold.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _dropped);
                    }
                }
            }
        }

        /// <summary>
        /// Polls <c>GET /locks/{key}</c> for up to <see cref="SampleSize"/> of the acquired keys, spread over the run,
        /// all at once, until each answers 404 (free) or <see cref="FreeDeadline"/> has passed. Returns (sampled, free).
        /// </summary>
        public async Task<(int Sampled, int Free)> CheckFreeAsync(long closing)
        {
            int step = Math.Max(1, _held.Length / SampleSize);
            var sample = Enumerable.Range(0, _held.Length / step).Select(i => i * step).Where(i => _held[i]).ToList();
            long deadline = closing + Outcome.ToTicks(FreeDeadline);
            var free = await Task.WhenAll(sample.Select(async index =>
            {
                using var caller = new Caller(context.Client.Http);
                while (true)
                {
                    var inspect = await caller.SendAsync(HttpMethod.Get, context.Service.Urls.Inspect(_prefix + index), context.Options.Timeout, readBody: false, CancellationToken.None);
                    if (inspect.Status == 404)
                    {
                        InterlockedMax(ref _sampleFreeAt, inspect.HeadersAt);
                        return true;
                    }

                    if (inspect.Status != 200)
                    {
                        lock (_gate)
                        {
                            InspectErrors.Add(inspect.Status);
                        }
                    }

                    if (Outcome.Now() >= deadline)
                    {
                        return false;
                    }

                    await Task.Delay(10);
                }
            }));
            return (sample.Count, free.Count(f => f));
        }

        private static void InterlockedMax(ref long target, long value)
        {
            long current = Interlocked.Read(ref target);
            while (value > current)
            {
                long seen = Interlocked.CompareExchange(ref target, value, current);
                if (seen == current)
                {
                    return;
                }

                current = seen;
            }
        }
    }
}
