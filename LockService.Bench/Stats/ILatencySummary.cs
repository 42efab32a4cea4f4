namespace LockService.Bench.Stats;

/// <summary>Percentiles of a set of latencies, in milliseconds.</summary>
internal interface ILatencySummary
{
    long Count { get; }

    double MinMs { get; }

    double MaxMs { get; }

    double MeanMs { get; }

    /// <summary>Nearest-rank percentile (p in 0..100); NaN when empty.</summary>
    double PercentileMs(double p);
}
