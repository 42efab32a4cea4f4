using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// Rounds of: a holder takes k, a watcher watches its token (<c>GET /locks/k/{token}?waitMs=</c>), the holder
/// releases. The figure is the time from the DELETE's 204 arriving at the client to the watch's 404 arriving.
/// </summary>
internal static class WatchLossMode
{
    private const string Released = "released";

    public static async Task<Report> RunAsync(BenchContext context)
    {
        using var run = new Run(context);
        return await RoundRun.RunAsync(run, "holder", "watcher");
    }

    private sealed class Run(BenchContext context) : RoundRun(context)
    {
        private readonly Caller _holder = new(context.Client.Http);
        private readonly Caller _watcher = new(context.Client.Http);
        private readonly string _holdQuery = LockUrls.AcquireQuery(context.Options.TtlMs, 0);
        private readonly string _watchQuery = LockUrls.WatchQuery(context.Options.WaitMs);
        private readonly SampleSet _loss = new();
        private StatusCounts _holderErrors = new();
        private StatusCounts _releaseErrors = new();
        private StatusCounts _watchErrors = new();
        private Dictionary<string, long> _otherReasons = [];
        private int _released;
        private int _early;

        public override void Dispose()
        {
            _holder.Dispose();
            _watcher.Dispose();
        }

        protected override void ResetCounts()
        {
            _holderErrors = new StatusCounts();
            _releaseErrors = new StatusCounts();
            _watchErrors = new StatusCounts();
            _otherReasons = [];
            _released = _early = 0;
        }

        protected override async Task RoundAsync(string key, bool record)
        {
            var options = Context.Options;
            var holderUrls = Context.Service.Urls;
            var hold = await _holder.SendAsync(HttpMethod.Post, holderUrls.Acquire(key, _holdQuery), options.Timeout, readBody: true, CancellationToken.None);
            if (hold.Status != 201)
            {
                _holderErrors.Add(hold.Status);
                await ModeReports.BackOffAsync(hold, CancellationToken.None);
                return;
            }

            // There is no gauge of watches: a fixed grace covers the request's trip and the server's subscription.
            // A release that came before the subscription would still be answered (the watch checks the token
            // after subscribing), only through another path.
            var releaseUri = holderUrls.Release(key, _holder.Token);
            var watching = _watcher.SendAsync(HttpMethod.Get, OtherService.Urls.Watch(key, _holder.Token, _watchQuery), Context.WaitingTimeout, readBody: true, CancellationToken.None);
            await Task.Delay(options.GraceMs);
            if (watching.IsCompleted)
            {
                // Answered while the token still held the lock: the watch did not wait.
                _early++;
                _watchErrors.Add((await watching).Status);
                await SendReleaseAsync(releaseUri);
                return;
            }

            var release = await SendReleaseAsync(releaseUri);
            var watch = await watching;
            if (watch.Status != 404)
            {
                _watchErrors.Add(watch.Status);
                return;
            }

            if (_watcher.Reason == Released)
            {
                _released++;
            }
            else
            {
                string reason = _watcher.Reason ?? "(none)";
                _otherReasons[reason] = _otherReasons.GetValueOrDefault(reason) + 1;
            }

            if (record && release.Status == 204)
            {
                _loss.Add(Outcome.ToMs(watch.HeadersAt - release.HeadersAt));
            }
        }

        protected override void AddFigures(Report report)
        {
            var options = Context.Options;
            report.Line("watch", $"waitMs {new Figure("waitMs", options.WaitMs)}, open {new Figure("graceMs", options.GraceMs)} ms (grace) before the holder releases");
            report.LatencyHeader();
            report.Latency("DELETE 204 -> watch 404", "watchLoss", _loss);
            report.Line("min", $"{new Figure("watchLossMinMs", _loss.MinMs, Figure.Ms)} ms ({new Figure("watchLossNegative", _loss.CountBelowZero)} negative: the 404 arrived before the 204)");
            report.Line("reason released", $"{new Figure("reasonReleased", _released)} (other reasons: {new Figure("otherReasons", _otherReasons, Text: _otherReasons.Count == 0 ? "none" : null)})");
            ModeReports.AddErrors(
                report,
                ("holder acquire errors", "holderErrors", _holderErrors),
                ("holder release errors", "releaseErrors", _releaseErrors),
                ("watch errors", "watchErrors", _watchErrors));
            report.Line("watch answered early", $"{new Figure("watchEarly", _early)}");
        }

        private async Task<Outcome> SendReleaseAsync(Uri uri)
        {
            var release = await _holder.SendAsync(HttpMethod.Delete, uri, Context.Options.Timeout, readBody: false, CancellationToken.None);
            if (release.Status != 204)
            {
                _releaseErrors.Add(release.Status);
            }

            return release;
        }
    }
}
