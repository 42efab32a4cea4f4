using LockService.Bench.Http;

namespace LockService.Bench.Stats;

/// <summary>
/// The measured interval in Stopwatch timestamps. A response counts when it arrived inside it, so warm-up
/// traffic and the requests still out at the end stay out of the figures.
/// </summary>
internal sealed class MeasureWindow
{
    private long _start = long.MaxValue;
    private long _end = long.MaxValue;

    public long Start => Volatile.Read(ref _start);

    public long End => Volatile.Read(ref _end);

    public double Seconds => Outcome.ToMs(End - Start) / 1000.0;

    /// <summary>A window fixed in advance: from warm-up's end for duration.</summary>
    public static MeasureWindow Scheduled(TimeSpan warmup, TimeSpan duration)
    {
        var window = new MeasureWindow();
        window.Open(Outcome.Now() + Outcome.ToTicks(warmup));
        window.Close(window.Start + Outcome.ToTicks(duration));
        return window;
    }

    public void Open(long timestamp) => Volatile.Write(ref _start, timestamp);

    public void Close(long timestamp) => Volatile.Write(ref _end, timestamp);

    public bool Contains(long timestamp) => timestamp >= Start && timestamp <= End;
}
