using LockService.Bench.Http;
using LockService.Bench.Service;

namespace LockService.Bench.Modes;

/// <summary>
/// What the round modes (handoff, watchloss, streamhandoff) share: --warmup seconds of unrecorded rounds, -n recorded
/// rounds one after another on keys of their own, and the second party of a round (waiter or watcher) on --url2
/// (or --url), made to wait in the server before the holder lets go.
/// </summary>
internal abstract class RoundRun(BenchContext context) : IDisposable
{
    protected BenchContext Context => context;

    /// <summary>The instance of the second party of a round: --url2, or --url.</summary>
    protected ServiceInfo OtherService { get; } = context.Service2 ?? context.Service;

    /// <summary>Rounds whose waiter the server's gauge did not count within its deadline.</summary>
    protected int GaugeMissed { get; set; }

    /// <summary>Runs the rounds (keys {prefix}{mode}-w{i} for warm-up, {prefix}{mode}-{i} for the record) and reports them.</summary>
    public static async Task<Report> RunAsync(RoundRun run, string holder, string other)
    {
        var context = run.Context;
        var options = context.Options;
        await using var rss = RssSampler.Start(options.Pid);
        string where = context.Service2 is null ? "" : $" ({holder} on {options.Url}, {other} on {options.Url2})";
        context.Progress($"{options.ModeName}: {options.Rounds} rounds after {options.Warmup.TotalSeconds} s of warm-up rounds, grace {options.GraceMs} ms{where}");

        string prefix = context.RunPrefix + options.ModeName;
        long warmupEnd = Outcome.Now() + Outcome.ToTicks(options.Warmup);
        int warmupRounds = 0;
        while (Outcome.Now() < warmupEnd)
        {
            await run.RoundAsync($"{prefix}-w{warmupRounds++}", record: false);
        }

        run.ResetCounts();
        for (int i = 0; i < options.Rounds; i++)
        {
            await run.RoundAsync($"{prefix}-{i}", record: true);
        }

        var report = new Report(context);
        report.Line("rounds", $"{new Figure("rounds", options.Rounds)} measured, {new Figure("warmupRounds", warmupRounds)} warm-up");
        run.AddFigures(report);
        ModeReports.AddRss(report, rss);
        return report;
    }

    public virtual void Dispose()
    {
    }

    protected abstract Task RoundAsync(string key, bool record);

    /// <summary>Forgets the counts of the warm-up rounds.</summary>
    protected abstract void ResetCounts();

    protected abstract void AddFigures(Report report);

    /// <summary>The waiting gauge of the other instance before its waiter is sent; null where it has none.</summary>
    protected Task<double?> ReadWaitingAsync() => OtherService.HasWaitingGauge
        ? ServiceMetrics.ReadWaitingAsync(context.Client.Http, OtherService.Urls.Metrics, context.Options.Timeout)
        : Task.FromResult<double?>(null);

    /// <summary>
    /// The waiter must be waiting in the server before the holder lets go, or the round measures a plain acquire.
    /// Where the service has the waiting gauge, wait until it counts this waiter; then (and always, for services
    /// without the gauge such as the yardstick) a fixed grace covers the request's trip and the server's subscription.
    /// </summary>
    protected async Task WaiterInPlaceAsync(double? waitingBefore)
    {
        if (waitingBefore is double baseline
            && !await ServiceMetrics.WaitUntilWaitingAsync(context.Client.Http, OtherService.Urls.Metrics, baseline + 1, context.Options.Timeout))
        {
            GaugeMissed++;
        }

        await Task.Delay(context.Options.GraceMs);
    }

    /// <summary>The rows of the waiter's readiness: how it was made sure, and how often the gauge did not show it.</summary>
    protected void AddWaiterReadiness(Report report)
    {
        int graceMs = context.Options.GraceMs;
        string readiness = OtherService.HasWaitingGauge
            ? $"server's {ServiceMetrics.WaitingGauge} gauge counted the waiter, then {graceMs} ms grace"
            : $"{graceMs} ms grace after sending the waiter's request (no {ServiceMetrics.WaitingGauge} gauge)";
        report.Line("waiter in place by", $"{new Figure("waiterReadiness", OtherService.HasWaitingGauge ? "gauge+grace" : "grace", Text: readiness)}");
    }

    protected void AddGaugeMissed(Report report) =>
        report.Line("gauge never showed waiter", $"{new Figure("gaugeMissed", OtherService.HasWaitingGauge ? GaugeMissed : null)}", show: OtherService.HasWaitingGauge);
}
