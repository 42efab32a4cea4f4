using System.Globalization;
using LockService.Bench.Http;

namespace LockService.Bench.Service;

/// <summary>Reads the service's Prometheus text, where it has one (the yardstick has none).</summary>
internal static class ServiceMetrics
{
    public const string WaitingGauge = "lockservice_waiting_requests";

    /// <summary>How long a round waits for the server's gauge to show its waiter before it goes on without.</summary>
    private static readonly TimeSpan GaugeDeadline = TimeSpan.FromSeconds(1);

    /// <summary>The sum of the waiting-requests gauge over its series; null when /metrics or the gauge is missing.</summary>
    public static async Task<double?> ReadWaitingAsync(HttpClient http, Uri metricsUri, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        string text;
        try
        {
            using var response = await http.GetAsync(metricsUri, cts.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            text = await response.Content.ReadAsStringAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            return null;
        }

        return SumOf(text, WaitingGauge);
    }

    /// <summary>
    /// Polls the gauge until it counts at least <paramref name="atLeast"/> waiting requests: a round's waiter is then
    /// waiting in the server. False when it does not within a second (the round goes on without).
    /// </summary>
    public static async Task<bool> WaitUntilWaitingAsync(HttpClient http, Uri metricsUri, double atLeast, TimeSpan timeout)
    {
        long deadline = Outcome.Now() + Outcome.ToTicks(GaugeDeadline);
        while (Outcome.Now() < deadline)
        {
            if (await ReadWaitingAsync(http, metricsUri, timeout) >= atLeast)
            {
                return true;
            }

            await Task.Delay(1);
        }

        return false;
    }

    /// <summary>Sums the samples of one metric in Prometheus text format (`name{labels} value [timestamp]`).</summary>
    public static double? SumOf(string text, string metric)
    {
        double? sum = null;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            var line = text.AsSpan()[range].Trim();
            if (!line.StartsWith(metric, StringComparison.Ordinal) || line.Length == metric.Length)
            {
                continue;
            }

            var rest = line[metric.Length..];
            if (rest[0] == '{')
            {
                int close = rest.LastIndexOf('}');
                if (close < 0)
                {
                    continue;
                }

                rest = rest[(close + 1)..];
            }
            else if (rest[0] is not (' ' or '\t'))
            {
                continue; // another metric whose name starts with this one
            }

            rest = rest.TrimStart();
            int end = rest.IndexOfAny(' ', '\t');
            var value = end < 0 ? rest : rest[..end];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed))
            {
                sum = (sum ?? 0) + parsed;
            }
        }

        return sum;
    }
}
