using System.Diagnostics;
using System.Numerics;

namespace LockService.Bench.Stats;

/// <summary>
/// Log-linear histogram of non-negative latencies in microseconds: exact below 256 us, then 128 buckets per
/// power of two, so a percentile is off by under 0.8 % (min and max are exact). A loop records into its own
/// histogram (fixed 35 KB, no allocation per sample, any run length); the mode merges them at the end.
/// </summary>
internal sealed class LatencyHistogram : ILatencySummary
{
    private const int SubBucketBits = 7;
    private const int SubBuckets = 1 << SubBucketBits;
    private const int ExactBelow = SubBuckets * 2;
    private const int MaxBits = 40; // 2^40 us is 12 days: anything longer is a broken clock
    private const int BucketCount = (MaxBits - SubBucketBits + 1) * SubBuckets;

    private readonly long[] _buckets = new long[BucketCount];
    private long _count;
    private long _sumUs;
    private long _minUs = long.MaxValue;
    private long _maxUs;

    public long Count => _count;

    public double MinMs => _count == 0 ? double.NaN : _minUs / 1000.0;

    public double MaxMs => _count == 0 ? double.NaN : _maxUs / 1000.0;

    public double MeanMs => _count == 0 ? double.NaN : _sumUs / 1000.0 / _count;

    /// <summary>Records a duration given in Stopwatch ticks.</summary>
    public void Record(long stopwatchTicks)
    {
        long us = Math.Clamp(stopwatchTicks * 1_000_000 / Stopwatch.Frequency, 0, (1L << MaxBits) - 1);
        _buckets[IndexOf(us)]++;
        _count++;
        _sumUs += us;
        _minUs = Math.Min(_minUs, us);
        _maxUs = Math.Max(_maxUs, us);
    }

    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < BucketCount; i++)
        {
            _buckets[i] += other._buckets[i];
        }

        _count += other._count;
        _sumUs += other._sumUs;
        _minUs = Math.Min(_minUs, other._minUs);
        _maxUs = Math.Max(_maxUs, other._maxUs);
    }

    public double PercentileMs(double p)
    {
        if (_count == 0)
        {
            return double.NaN;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(p / 100.0 * _count));
        long seen = 0;
        for (int i = 0; i < BucketCount; i++)
        {
            seen += _buckets[i];
            if (seen >= rank)
            {
                return Math.Clamp(Midpoint(i), _minUs, _maxUs) / 1000.0;
            }
        }

        return MaxMs;
    }

    private static int IndexOf(long us)
    {
        if (us < ExactBelow)
        {
            return (int)us;
        }

        int shift = 63 - BitOperations.LeadingZeroCount((ulong)us) - SubBucketBits;
        return ((shift + 1) * SubBuckets) + (int)((us >> shift) - SubBuckets);
    }

    private static long Midpoint(int index)
    {
        if (index < ExactBelow)
        {
            return index;
        }

        int shift = (index / SubBuckets) - 1;
        long low = ((long)(index % SubBuckets) + SubBuckets) << shift;
        return low + ((1L << shift) / 2);
    }
}
