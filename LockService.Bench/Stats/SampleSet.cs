namespace LockService.Bench.Stats;

/// <summary>Exact latencies kept one by one, negative ones included; for modes with a bounded number of samples.</summary>
internal sealed class SampleSet : ILatencySummary
{
    private readonly List<double> _ms = [];
    private bool _sorted = true;

    public long Count => _ms.Count;

    public double MinMs => _ms.Count == 0 ? double.NaN : Sorted()[0];

    public double MaxMs => _ms.Count == 0 ? double.NaN : Sorted()[^1];

    public double MeanMs => _ms.Count == 0 ? double.NaN : _ms.Average();

    public int CountBelowZero => _ms.Count(v => v < 0);

    public void Add(double ms)
    {
        _ms.Add(ms);
        _sorted = false;
    }

    public double PercentileMs(double p)
    {
        if (_ms.Count == 0)
        {
            return double.NaN;
        }

        var sorted = Sorted();
        int rank = Math.Max(1, (int)Math.Ceiling(p / 100.0 * sorted.Count));
        return sorted[rank - 1];
    }

    private List<double> Sorted()
    {
        if (!_sorted)
        {
            _ms.Sort();
            _sorted = true;
        }

        return _ms;
    }
}
