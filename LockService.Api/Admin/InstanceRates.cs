using LockService.Api.Observability;

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

    /// <summary>Acquires, releases and force-releases per second, and the seconds they were measured over (0 at first).</summary>
    public (double Acquires, double Releases, double Forced, double Seconds) Now()
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
                ? (0, 0, 0, 0)
                : ((now.Acquires - first.Acquires) / seconds, (now.Releases - first.Releases) / seconds, (now.Forced - first.Forced) / seconds, seconds);
        }
    }

    private Sample Take() => new(
        clock.GetTimestamp(),
        LockMetrics.Operations.WithLabels("acquire", "acquired").Value,
        LockMetrics.Operations.WithLabels("release", "released").Value,
        LockMetrics.ForcedReleases.Value);

    private readonly record struct Sample(long At, double Acquires, double Releases, double Forced);
}
