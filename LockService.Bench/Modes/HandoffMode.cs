using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// Rounds of: a holder takes k, a waiter asks for k with waitMs, the holder releases. The figure is the time
/// from the DELETE's response arriving at the client to the waiter's 201 arriving, as measured: it can be
/// negative when the service answers the waiter before the holder.
/// </summary>
internal static class HandoffMode
{
    /// <summary>How long a round waits for the server's gauge to show its waiter before it goes on without.</summary>
    private static readonly TimeSpan GaugeDeadline = TimeSpan.FromSeconds(1);

    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        await using var rss = RssSampler.Start(options.Pid);
        using var run = new Run(context);
        string where = context.Service2 is null ? "" : $" (holder on {options.Url}, waiter on {options.Url2})";
        context.Progress($"handoff: {options.Rounds} rounds after {options.Warmup.TotalSeconds} s of warm-up rounds, grace {options.GraceMs} ms{where}");

        long warmupEnd = Outcome.Now() + Outcome.ToTicks(options.Warmup);
        int warmupRounds = 0;
        while (Outcome.Now() < warmupEnd)
        {
            await run.RoundAsync($"{context.RunPrefix}handoff-w{warmupRounds++}", record: false);
        }

        run.ResetCounts();
        for (int round = 0; round < options.Rounds; round++)
        {
            await run.RoundAsync($"{context.RunPrefix}handoff-{round}", record: true);
        }

        return run.ToReport(warmupRounds, rss);
    }

    private sealed class Run(BenchContext context) : IDisposable
    {
        private readonly ServiceInfo _holderService = context.Service;
        private readonly ServiceInfo _waiterService = context.Service2 ?? context.Service;
        private readonly Caller _holder = new(context.Client.Http);
        private readonly Caller _waiter = new(context.Client.Http);
        private readonly string _holdQuery = LockUrls.AcquireQuery(context.Options.TtlMs, 0);
        private readonly string _waitQuery = LockUrls.AcquireQuery(context.Options.TtlMs, context.Options.WaitMs);
        private readonly SampleSet _handoff = new();
        private StatusCounts _holderErrors = new();
        private StatusCounts _releaseErrors = new();
        private StatusCounts _waiterErrors = new();
        private int _early;
        private int _notHeld;
        private int _gaugeMissed;

        public void Dispose()
        {
            _holder.Dispose();
            _waiter.Dispose();
        }

        public void ResetCounts()
        {
            _holderErrors = new StatusCounts();
            _releaseErrors = new StatusCounts();
            _waiterErrors = new StatusCounts();
            _early = _notHeld = _gaugeMissed = 0;
        }

        public async Task RoundAsync(string key, bool record)
        {
            var options = context.Options;
            var holderUrls = _holderService.Urls;
            var waiterUrls = _waiterService.Urls;
            var hold = await _holder.SendAsync(HttpMethod.Post, holderUrls.Acquire(key, _holdQuery), options.Timeout, readToken: true, CancellationToken.None);
            if (hold.Status != 201)
            {
                _holderErrors.Add(hold.Status);
                await ModeReports.BackOffAsync(hold, CancellationToken.None);
                return;
            }

            string holderToken = new(_holder.Token);
            if (_holderService.CanInspect)
            {
                // A sanity check where the service has GET /locks/{key}: the waiter must find the lock held.
                var inspect = await _holder.SendAsync(HttpMethod.Get, holderUrls.Inspect(key), options.Timeout, readToken: false, CancellationToken.None);
                if (inspect.Status != 200)
                {
                    _notHeld++;
                }
            }

            double? waitingBefore = _waiterService.HasWaitingGauge
                ? await ServiceMetrics.ReadWaitingAsync(context.Client.Http, waiterUrls.Metrics, options.Timeout)
                : null;
            var waiting = _waiter.SendAsync(HttpMethod.Post, waiterUrls.Acquire(key, _waitQuery), context.WaitingTimeout, readToken: true, CancellationToken.None);

            // The waiter must be waiting in the server before the release, or the round measures a plain
            // acquire. Where the service has the waiting gauge, wait until it counts this waiter; then (and
            // always, for services without the gauge such as the yardstick) a fixed grace covers the request's
            // trip and the server's subscription.
            if (waitingBefore is double baseline && !await GaugeShowsAsync(waiterUrls, baseline + 1))
            {
                _gaugeMissed++;
            }

            await Task.Delay(options.GraceMs);
            if (waiting.IsCompleted)
            {
                // Answered before the holder let go: a 409 (waitMs not honoured) or a 201 that broke mutual exclusion.
                var answer = await waiting;
                _early++;
                _waiterErrors.Add(answer.Status);
                await ReleaseAsync(_holder, holderUrls.Release(key, holderToken));
                if (answer.Status == 201)
                {
                    await ReleaseAsync(_waiter, waiterUrls.Release(key, _waiter.Token));
                }

                return;
            }

            // Released, or (--shorten-ms) its TTL cut so that it lapses ShortenMs after the PATCH's answer.
            var release = options.ShortenMs is int shortenMs
                ? await _holder.SendAsync(HttpMethod.Patch, holderUrls.Extend(key, holderToken, shortenMs), options.Timeout, readToken: false, CancellationToken.None)
                : await _holder.SendAsync(HttpMethod.Delete, holderUrls.Release(key, holderToken), options.Timeout, readToken: false, CancellationToken.None);
            var releasedStatus = options.ShortenMs is null ? 204 : 200;
            var acquired = await waiting;
            if (release.Status != releasedStatus)
            {
                _releaseErrors.Add(release.Status);
            }

            if (acquired.Status != 201)
            {
                _waiterErrors.Add(acquired.Status);
                return;
            }

            if (record && release.Status == releasedStatus)
            {
                _handoff.Add(Outcome.ToMs(acquired.HeadersAt - release.HeadersAt) - (options.ShortenMs ?? 0));
            }

            await ReleaseAsync(_waiter, waiterUrls.Release(key, _waiter.Token));
        }

        public Report ToReport(int warmupRounds, RssSampler? rss)
        {
            var options = context.Options;
            var report = new Report(context);
            report.Line("rounds", $"{new Figure("rounds", options.Rounds)} measured, {new Figure("warmupRounds", warmupRounds)} warm-up");
            report.Line("waiter", $"waitMs {new Figure("waitMs", options.WaitMs)}, in place {new Figure("graceMs", options.GraceMs)} ms (grace) before the holder lets go");
            string letGo = options.ShortenMs is int ms ? $"PATCH 200 + {ms} ms" : "DELETE 204";
            report.Line("holder lets go by", $"{new Figure("shortenMs", options.ShortenMs, Text: options.ShortenMs is int shortenMs ? $"PATCH to ttlMs {shortenMs}" : "DELETE")}");
            report.LatencyHeader();
            report.Latency($"{letGo} -> waiter 201", "handoff", _handoff);
            report.Line("min", $"{new Figure("handoffMinMs", _handoff.MinMs, Figure.Ms)} ms ({new Figure("handoffNegative", _handoff.CountBelowZero)} negative: waiter's 201 arrived before the {letGo})");
            string readiness = _waiterService.HasWaitingGauge
                ? $"server's {ServiceMetrics.WaitingGauge} gauge counted the waiter, then {options.GraceMs} ms grace"
                : $"{options.GraceMs} ms grace after sending the waiter's request (no {ServiceMetrics.WaitingGauge} gauge)";
            report.Line("waiter in place by", $"{new Figure("waiterReadiness", _waiterService.HasWaitingGauge ? "gauge+grace" : "grace", Text: readiness)}");
            ModeReports.AddErrors(
                report,
                ("holder acquire errors", "holderErrors", _holderErrors),
                ("holder release errors", "releaseErrors", _releaseErrors),
                ("waiter errors", "waiterErrors", _waiterErrors));
            report.Line("waiter answered early", $"{new Figure("waiterEarly", _early)}");
            report.Line("inspect said not held", $"{new Figure("inspectNotHeld", _holderService.CanInspect ? _notHeld : null)}", show: _holderService.CanInspect);
            report.Line("gauge never showed waiter", $"{new Figure("gaugeMissed", _waiterService.HasWaitingGauge ? _gaugeMissed : null)}", show: _waiterService.HasWaitingGauge);
            ModeReports.AddRss(report, rss);
            return report;
        }

        private async Task<bool> GaugeShowsAsync(LockUrls urls, double atLeast)
        {
            long deadline = Outcome.Now() + Outcome.ToTicks(GaugeDeadline);
            while (Outcome.Now() < deadline)
            {
                double? waiting = await ServiceMetrics.ReadWaitingAsync(context.Client.Http, urls.Metrics, context.Options.Timeout);
                if (waiting >= atLeast)
                {
                    return true;
                }

                await Task.Delay(1);
            }

            return false;
        }

        private async Task ReleaseAsync(Caller caller, Uri uri)
        {
            var release = await caller.SendAsync(HttpMethod.Delete, uri, context.Options.Timeout, readToken: false, CancellationToken.None);
            if (release.Status != 204)
            {
                _releaseErrors.Add(release.Status);
            }
        }
    }
}
