using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>Pieces that several modes share.</summary>
internal static class ModeReports
{
    /// <summary>The measured window of the modes that run for a duration.</summary>
    public static void AddWindow(Report report, double seconds, TimeSpan warmup) =>
        report.Line("measured", $"{new Figure("durationSec", seconds, "0.00")} s after {new Figure("warmupSec", warmup.TotalSeconds, "0.###")} s warm-up");

    public static void AddRss(Report report, RssSampler? rss)
    {
        rss?.SampleNow();
        report.Line("service RSS peak", $"{new Figure("rssPeakMb", rss?.PeakMb, "0.0")} MB", show: rss is not null);
    }

    /// <summary>
    /// A row per set of unexpected answers (JSON: a name-to-count map), their sum as errorCount, and the cause of
    /// transport errors (refused, too many open files) in a note, since they are counted like any other.
    /// </summary>
    public static void AddErrors(Report report, params (string Label, string Name, StatusCounts Counts)[] sets)
    {
        report.JsonOnly("errorCount", sets.Sum(set => set.Counts.Total));
        foreach (var (label, name, counts) in sets)
        {
            report.Line(label, $"{new Figure(name, counts)}");
        }

        if (sets.Any(set => set.Counts.ByName().ContainsKey(Outcome.Name(Outcome.Transport))) && LockClient.LastConnectError is string cause)
        {
            report.Line("last transport error", $"{cause}");
        }
    }

    /// <summary>
    /// A loop whose connection failed waits a little before the next try, so that a dead service does not
    /// turn the generator into a busy loop; HTTP answers (503, 429 included) are retried at once, as a client would.
    /// </summary>
    public static Task BackOffAsync(Outcome outcome, CancellationToken cancel) =>
        outcome.Status == Outcome.Transport ? DelayAsync(TimeSpan.FromMilliseconds(10), cancel) : Task.CompletedTask;

    private static async Task DelayAsync(TimeSpan delay, CancellationToken cancel)
    {
        try
        {
            await Task.Delay(delay, cancel);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
