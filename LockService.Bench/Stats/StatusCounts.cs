using LockService.Bench.Http;

namespace LockService.Bench.Stats;

/// <summary>Counts of unexpected answers by status (HTTP code, or timeout/transport/badBody), one instance per loop.</summary>
internal sealed class StatusCounts
{
    private readonly SortedDictionary<int, long> _counts = [];

    public long Total { get; private set; }

    public void Add(int status, long count = 1)
    {
        _counts[status] = _counts.GetValueOrDefault(status) + count;
        Total += count;
    }

    public void Add(StatusCounts other)
    {
        foreach (var (status, count) in other._counts)
        {
            Add(status, count);
        }
    }

    public IReadOnlyDictionary<string, long> ByName() =>
        _counts.ToDictionary(kv => Outcome.Name(kv.Key), kv => kv.Value, StringComparer.Ordinal);

    public override string ToString() => Total == 0
        ? "none"
        : string.Join(", ", _counts.Select(kv => $"{Outcome.Name(kv.Key)}: {kv.Value}"));
}
