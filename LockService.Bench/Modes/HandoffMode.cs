using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// Rounds of: a holder takes k, a waiter asks for k with waitMs, the holder releases. The figure is the time
/// from the DELETE's response arriving at the client to the waiter's 201 arriving, as measured: it can be
/// negative when the service answers the waiter before the holder. With --limit, k is a semaphore of that many places,
/// the others held through the round, so the holder's release frees the one place the waiter can have. With --rw-mode, k is
/// a read/write lock, the holder holds it in that mode and the waiter asks for write: with read, the figure is the writer's
/// hand-off after the last reader's release.
/// </summary>
internal static class HandoffMode
{
    public static async Task<Report> RunAsync(BenchContext context)
    {
        using var run = new Run(context);
        return await RoundRun.RunAsync(run, "holder", "waiter");
    }

    private sealed class Run(BenchContext context) : RoundRun(context)
    {
        private readonly ServiceInfo _holderService = context.Service;
        private readonly Caller _holder = new(context.Client.Http);
        private readonly Caller _waiter = new(context.Client.Http);
        private readonly Caller _filler = new(context.Client.Http);
        private readonly string _holdQuery = LockUrls.AcquireQuery(context.Options.TtlMs, 0);
        private readonly string _waitQuery = LockUrls.AcquireQuery(context.Options.TtlMs, context.Options.WaitMs);
        private readonly SampleSet _handoff = new();
        private StatusCounts _holderErrors = new();
        private StatusCounts _releaseErrors = new();
        private StatusCounts _waiterErrors = new();
        private int _early;
        private int _notHeld;

        public override void Dispose()
        {
            _holder.Dispose();
            _waiter.Dispose();
            _filler.Dispose();
        }

        protected override void ResetCounts()
        {
            _holderErrors = new StatusCounts();
            _releaseErrors = new StatusCounts();
            _waiterErrors = new StatusCounts();
            _early = _notHeld = GaugeMissed = 0;
        }

        protected override async Task RoundAsync(string key, bool record)
        {
            // A semaphore's other places are taken first and given back after the round.
            var fillers = new List<string>();
            for (int i = 1; i < (Context.Options.Limit ?? 1); i++)
            {
                var fill = await _filler.SendAsync(HttpMethod.Post, _holderService.Urls.Acquire(key, _holdQuery), Context.Options.Timeout, readBody: true, CancellationToken.None);
                if (fill.Status == 201)
                {
                    fillers.Add(new string(_filler.Token));
                }
                else
                {
                    _holderErrors.Add(fill.Status);
                }
            }

            try
            {
                await HandOffAsync(key, record);
            }
            finally
            {
                foreach (var token in fillers)
                {
                    await ReleaseAsync(_filler, _holderService.Urls.Release(key, token));
                }
            }
        }

        private async Task HandOffAsync(string key, bool record)
        {
            var options = Context.Options;
            var holderUrls = _holderService.Urls;
            var waiterUrls = options.RwMode is null ? OtherService.Urls : OtherService.Urls.InMode("write");
            var hold = await _holder.SendAsync(HttpMethod.Post, holderUrls.Acquire(key, _holdQuery), options.Timeout, readBody: true, CancellationToken.None);
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
                var inspect = await _holder.SendAsync(HttpMethod.Get, holderUrls.Inspect(key), options.Timeout, readBody: false, CancellationToken.None);
                if (inspect.Status != 200)
                {
                    _notHeld++;
                }
            }

            double? waitingBefore = await ReadWaitingAsync();
            var waiting = _waiter.SendAsync(HttpMethod.Post, waiterUrls.Acquire(key, _waitQuery), Context.WaitingTimeout, readBody: true, CancellationToken.None);
            await WaiterInPlaceAsync(waitingBefore);
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
                ? await _holder.SendAsync(HttpMethod.Patch, holderUrls.Extend(key, holderToken, shortenMs), options.Timeout, readBody: false, CancellationToken.None)
                : await _holder.SendAsync(HttpMethod.Delete, holderUrls.Release(key, holderToken), options.Timeout, readBody: false, CancellationToken.None);
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

        protected override void AddFigures(Report report)
        {
            var options = Context.Options;
            report.Line("waiter", $"waitMs {new Figure("waitMs", options.WaitMs)}, in place {new Figure("graceMs", options.GraceMs)} ms (grace) before the holder lets go");
            report.Line("semaphore limit", $"{new Figure("limit", options.Limit)} (the other places held through each round)", show: options.Limit is not null);
            report.Line("read/write lock", $"holder {new Figure("rwMode", options.RwMode)}, waiter write", show: options.RwMode is not null);
            string letGo = options.ShortenMs is int ms ? $"PATCH 200 + {ms} ms" : "DELETE 204";
            report.Line("holder lets go by", $"{new Figure("shortenMs", options.ShortenMs, Text: options.ShortenMs is int shortenMs ? $"PATCH to ttlMs {shortenMs}" : "DELETE")}");
            report.LatencyHeader();
            report.Latency($"{letGo} -> waiter 201", "handoff", _handoff);
            report.Line("min", $"{new Figure("handoffMinMs", _handoff.MinMs, Figure.Ms)} ms ({new Figure("handoffNegative", _handoff.CountBelowZero)} negative: waiter's 201 arrived before the {letGo})");
            AddWaiterReadiness(report);
            ModeReports.AddErrors(
                report,
                ("holder acquire errors", "holderErrors", _holderErrors),
                ("holder release errors", "releaseErrors", _releaseErrors),
                ("waiter errors", "waiterErrors", _waiterErrors));
            report.Line("waiter answered early", $"{new Figure("waiterEarly", _early)}");
            report.Line("inspect said not held", $"{new Figure("inspectNotHeld", _holderService.CanInspect ? _notHeld : null)}", show: _holderService.CanInspect);
            AddGaugeMissed(report);
        }

        private async Task ReleaseAsync(Caller caller, Uri uri)
        {
            var release = await caller.SendAsync(HttpMethod.Delete, uri, Context.Options.Timeout, readBody: false, CancellationToken.None);
            if (release.Status != 204)
            {
                _releaseErrors.Add(release.Status);
            }
        }
    }
}
