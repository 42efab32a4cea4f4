namespace LockService.Bench;

internal enum BenchMode
{
    Cycles,
    Contended,
    Handoff,
    Waiters,
    WatchLoss,
    StreamHandoff,
    Streams,
    Semaphores,
    Elections,
}

/// <summary>A bad command line or an unusable environment: printed as one line, exit code 2.</summary>
internal sealed class SetupException(string message) : Exception(message);

/// <summary>One run's settings, as parsed by <see cref="BenchCommandLine"/>, where each option has its default and range.</summary>
internal sealed class BenchOptions
{
    public required BenchMode Mode { get; init; }

    public required Uri Url { get; init; }

    public Uri? Url2 { get; init; }

    public required string Redis { get; init; }

    public int Concurrency { get; init; }

    public TimeSpan Duration { get; init; }

    public TimeSpan Warmup { get; init; }

    public int Rounds { get; init; }

    public string? ApiKey { get; init; }

    public bool JsonOnly { get; init; }

    public int KeySpace { get; init; }

    /// <summary>Cycles per second the cycles mode starts at most, across its loops (0: no pacing).</summary>
    public int Rate { get; init; }

    public int Keys { get; init; }

    public long TtlMs { get; init; }

    public long WaitMs { get; init; }

    public TimeSpan Timeout { get; init; }

    public int GraceMs { get; init; }

    public int? ShortenMs { get; init; }

    public int SettleMs { get; init; }

    public TimeSpan SettleTimeout { get; init; }

    public int? Pid { get; init; }

    /// <summary>With a limit, the run's keys are semaphores of that limit (<c>/semaphores</c>), else locks.</summary>
    public int? Limit { get; init; }

    /// <summary>
    /// With a mode (read or write), the run's keys are read/write locks (<c>/rwlocks</c>): the cycles' acquires, and the
    /// handoff's holder, ask for it; the handoff's waiter always asks for write (the writer's hand-off).
    /// </summary>
    public string? RwMode { get; init; }

    public string ModeName => Mode.ToString().ToLowerInvariant();
}
