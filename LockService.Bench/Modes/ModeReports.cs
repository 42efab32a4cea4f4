using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>Pieces that several modes share.</summary>
internal static class ModeReports
{
    public static void AddRss(Report report, RssSampler? rss)
    {
        if (rss is null)
        {
            report.Add("rssPeakMb", null);
            return;
        }

        rss.SampleNow();
        report.Line("service RSS peak", $"{Report.Number(rss.PeakMb)} MB");
        report.Add("rssPeakMb", rss.PeakMb);
    }

    /// <summary>Transport errors are counted like any other; their cause (refused, too many open files) goes in a note.</summary>
    public static void AddTransportNote(Report report, params StatusCounts[] counts)
    {
        if (counts.Any(c => c.ByName().ContainsKey(Outcome.Name(Outcome.Transport))) && LockClient.LastConnectError is string cause)
        {
            report.Line("last transport error", cause);
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
