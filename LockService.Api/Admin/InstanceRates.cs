using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Core.Leases;

namespace LockService.Api.Admin;

/// <summary>
/// This instance's acquire and release rates for the dashboard, from the counters /metrics publishes: sampled when
/// asked (at most once a second), over the last ten seconds. Nothing runs while nobody asks.
/// </summary>
internal sealed class InstanceRates(TimeProvider clock)
{
    private static readonly TimeSpan SampleEvery = TimeSpan.FromSeconds(1), Window = TimeSpan.FromSeconds(10);

    private readonly Queue<Sample> _samples = new();
    private readonly Lock _gate = new();

    private static readonly LeaseKind[] Kinds = Enum.GetValues<LeaseKind>();

    /// <summary>
    /// Per kind, acquires and releases per second; force-releases per second of every kind; and the seconds they were
    /// measured over (0 at first).
    /// </summary>
    public (double[] Acquires, double[] Releases, double Forced, double Seconds) Now()
    {
        var now = Take();
        lock (_gate)
        {
            if (_samples.Count == 0 || clock.GetElapsedTime(_samples.Last().At, now.At) >= SampleEvery)
            {
                _samples.Enqueue(now);
            }

            while (_samples.Count > 1 && clock.GetElapsedTime(_samples.Peek().At, now.At) > Window)
            {
                _samples.Dequeue();
            }

            var first = _samples.Peek();
            var seconds = clock.GetElapsedTime(first.At, now.At).TotalSeconds;
            return seconds < 0.1
                ? (new double[Kinds.Length], new double[Kinds.Length], 0, 0)
                : (Rates(first.Acquires, now.Acquires, seconds), Rates(first.Releases, now.Releases, seconds), (now.Forced - first.Forced) / seconds, seconds);
        }
    }

    private static double[] Rates(double[] then, double[] now, double seconds) => [.. now.Select((n, i) => (n - then[i]) / seconds)];

    // Counted from the operations' typed outcomes, so a kind's refused acquires (held, full) never count as acquires.
    private Sample Take() => new(
        clock.GetTimestamp(),
        [.. Kinds.Select(kind => LockMetrics.Operations.WithLabels(LeaseOperationMetadata.LabelOf(kind), "acquire", "acquired").Value)],
        [.. Kinds.Select(kind => LockMetrics.Operations.WithLabels(LeaseOperationMetadata.LabelOf(kind), "release", "released").Value)],
        LockMetrics.ForcedReleases.Value + LockMetrics.PermitForcedReleases.Value);

    private readonly record struct Sample(long At, double[] Acquires, double[] Releases, double Forced);
}
