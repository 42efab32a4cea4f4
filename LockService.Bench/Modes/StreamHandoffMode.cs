using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// Rounds of: a stream holds k, a waiter asks for k with waitMs, the stream's client closes its connection. The
/// figure is the time from the close (just after the response is disposed) to the waiter's 201 arriving.
/// </summary>
internal static class StreamHandoffMode
{
    public static async Task<Report> RunAsync(BenchContext context)
    {
        // Its own client: disposing an unfinished response must close the connection at once.
        using var streamClient = new LockClient(16, context.Options.ApiKey, closeUnfinished: true);
        using var run = new Run(context, streamClient);
        return await RoundRun.RunAsync(run, "stream", "waiter");
    }

    private sealed class Run(BenchContext context, LockClient streamClient) : RoundRun(context)
    {
        private readonly Caller _waiter = new(context.Client.Http);
        private readonly string _streamQuery = LockUrls.AcquireQuery(context.Options.TtlMs, 0);
        private readonly string _waitQuery = LockUrls.AcquireQuery(context.Options.TtlMs, context.Options.WaitMs);
        private readonly SampleSet _handoff = new();
        private StatusCounts _streamErrors = new();
        private StatusCounts _waiterErrors = new();
        private StatusCounts _releaseErrors = new();
        private int _early;

        public override void Dispose() => _waiter.Dispose();

        protected override void ResetCounts()
        {
            _streamErrors = new StatusCounts();
            _waiterErrors = new StatusCounts();
            _releaseErrors = new StatusCounts();
            _early = GaugeMissed = 0;
        }

        protected override async Task RoundAsync(string key, bool record)
        {
            var options = Context.Options;
            var waiterUrls = OtherService.Urls;
            var (open, stream) = await HeldStream.OpenAsync(streamClient.Http, Context.Service.Urls.Acquire(key, _streamQuery), options.Timeout, CancellationToken.None);
            if (stream is null)
            {
                _streamErrors.Add(open.Status);
                await ModeReports.BackOffAsync(open, CancellationToken.None);
                return;
            }

            Task<Outcome> waiting;
            using (stream)
            {
                // As in handoff: the waiter must be waiting in the server before the close.
                double? waitingBefore = await ReadWaitingAsync();
                waiting = _waiter.SendAsync(HttpMethod.Post, waiterUrls.Acquire(key, _waitQuery), Context.WaitingTimeout, readBody: true, CancellationToken.None).AsTask();
                await WaiterInPlaceAsync(waitingBefore);
                if (waiting.IsCompleted)
                {
                    // Answered while the stream held the lock: a 409 (waitMs not honoured) or a 201 that broke mutual exclusion.
                    var answer = await waiting;
                    _early++;
                    _waiterErrors.Add(answer.Status);
                    if (answer.Status == 201)
                    {
                        await ReleaseAsync(waiterUrls.Release(key, _waiter.Token));
                    }

                    return;
                }
            }

            long closedAt = Outcome.Now();
            var acquired = await waiting;
            if (acquired.Status != 201)
            {
                _waiterErrors.Add(acquired.Status);
                return;
            }

            if (record)
            {
                _handoff.Add(Outcome.ToMs(acquired.HeadersAt - closedAt));
            }

            await ReleaseAsync(waiterUrls.Release(key, _waiter.Token));
        }

        protected override void AddFigures(Report report)
        {
            var options = Context.Options;
            report.Line("stream", $"ttlMs {new Figure("ttlMs", options.TtlMs)}, closed by the client once the waiter is in place");
            report.Line("waiter", $"waitMs {new Figure("waitMs", options.WaitMs)}, in place {new Figure("graceMs", options.GraceMs)} ms (grace) before the close");
            report.LatencyHeader();
            report.Latency("stream closed -> waiter 201", "handoff", _handoff);
            report.Line("min", $"{new Figure("handoffMinMs", _handoff.MinMs, Figure.Ms)} ms");
            AddWaiterReadiness(report);
            ModeReports.AddErrors(
                report,
                ("stream open errors", "streamErrors", _streamErrors),
                ("waiter errors", "waiterErrors", _waiterErrors),
                ("waiter release errors", "releaseErrors", _releaseErrors));
            report.Line("waiter answered early", $"{new Figure("waiterEarly", _early)}");
            AddGaugeMissed(report);
        }

        private async Task ReleaseAsync(Uri uri)
        {
            var release = await _waiter.SendAsync(HttpMethod.Delete, uri, Context.Options.Timeout, readBody: false, CancellationToken.None);
            if (release.Status != 204)
            {
                _releaseErrors.Add(release.Status);
            }
        }
    }
}
