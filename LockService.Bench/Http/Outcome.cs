using System.Diagnostics;
using System.Globalization;

namespace LockService.Bench.Http;

/// <summary>How one request ended, with Stopwatch timestamps of its start, its response headers and its end.</summary>
internal readonly record struct Outcome(int Status, long Started, long HeadersAt, long Finished)
{
    /// <summary>No answer within the per-request timeout.</summary>
    public const int Timeout = -1;

    /// <summary>Connect or I/O failure (refused, reset, too many open files).</summary>
    public const int Transport = -2;

    /// <summary>The run ended while the request was out; not an error.</summary>
    public const int Canceled = -3;

    /// <summary>A 201 whose body carried no usable token.</summary>
    public const int BadBody = -4;

    public bool IsCanceled => Status == Canceled;

    public long Elapsed => Finished - Started;

    public static string Name(int status) => status switch
    {
        Timeout => "timeout",
        Transport => "transport",
        Canceled => "canceled",
        BadBody => "badBody",
        _ => status.ToString(CultureInfo.InvariantCulture),
    };

    public static long Now() => Stopwatch.GetTimestamp();

    public static double ToMs(long stopwatchTicks) => stopwatchTicks * 1000.0 / Stopwatch.Frequency;

    public static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
