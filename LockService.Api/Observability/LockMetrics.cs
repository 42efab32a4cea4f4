using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// The service's Prometheus metrics. Labels are bounded sets (operation, outcome): never a lock key or a
/// tenant, whose number has no bound.
/// </summary>
internal static class LockMetrics
{
    public static readonly Counter Operations = Metrics.CreateCounter(
        "lockservice_operations_total",
        "Lock operations by outcome.",
        new CounterConfiguration { LabelNames = ["operation", "outcome"] });

    public static readonly Histogram RequestDuration = Metrics.CreateHistogram(
        "lockservice_request_duration_seconds",
        "Time to answer a lock request, waiting included.",
        new HistogramConfiguration { LabelNames = ["operation"], Buckets = Histogram.ExponentialBuckets(0.00025, 2, 18) });

    public static readonly Histogram WaitDuration = Metrics.CreateHistogram(
        "lockservice_wait_duration_seconds",
        "Time acquires spent waiting in the server for a held lock (only those that had to wait).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 17) });

    public static readonly Gauge WaitingRequests = Metrics.CreateGauge(
        "lockservice_waiting_requests",
        "Acquire requests waiting in this instance right now.");

    public static readonly Counter RedisErrors = Metrics.CreateCounter(
        "lockservice_redis_errors_total",
        "Lock requests that failed because Redis was unreachable, slow or switching over.");
}
