using System.Collections.Concurrent;
using LockService.Api.Locks;
using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// What every request adds to the metrics: http_request_duration_seconds, and for lock requests the operation
/// counters and latency histograms. Labelled children are resolved once and cached, never per request.
/// </summary>
internal static class RequestMetrics
{
    private const int Acquire = (int)LockOperation.Acquire, Release = (int)LockOperation.Release, Extend = (int)LockOperation.Extend, Inspect = (int)LockOperation.Inspect;
    private const int Acquired = 0, Held = 1, Released = 2, Extended = 3, NotHeld = 4, Rejected = 5, Invalid = 6, Error = 7, Cancelled = 8, Unauthorized = 9;
    private static readonly string[] Operations = Enum.GetValues<LockOperation>().Select(o => LockOperationMetadata.Of(o).Label).ToArray();
    private static readonly string[] Outcomes = ["acquired", "held", "released", "extended", "not_held", "rejected", "invalid", "error", "cancelled", "unauthorized"];

    private static readonly Counter.Child[][] OperationCounters =
        Operations.Select(operation => Outcomes.Select(outcome => LockMetrics.Operations.WithLabels(operation, outcome)).ToArray()).ToArray();

    private static readonly Histogram.Child[] Durations = Operations.Select(operation => LockMetrics.RequestDuration.WithLabels(operation)).ToArray();

    // Each operation's verb (a semaphore's acquire is an acquire), which says what its statuses mean.
    private static readonly int[] Verbs = Enum.GetValues<LockOperation>().Select(o => (int)LockOperationMetadata.Of(o).Verb).ToArray();

    /// <summary>
    /// The name, labels and buckets of prometheus-net's UseHttpMetrics, so its dashboards keep working. Its
    /// middleware captured route data and built a label array on every request, about a tenth of the service's
    /// CPU per lock request in a profile; this is one cached lookup. Methods outside the standard set are "OTHER",
    /// so the label values stay a bounded set whatever clients send.
    /// </summary>
    private static readonly Histogram HttpDuration = Metrics.CreateHistogram(
        "http_request_duration_seconds",
        "Provides the duration in seconds of HTTP requests from an ASP.NET application.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16), LabelNames = ["code", "method", "controller", "action", "endpoint"] });

    private static readonly string[] KnownMethods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    private static readonly ConcurrentDictionary<HttpSeries, Histogram.Child> HttpChildren = new();

    /// <summary>The lock operation of an endpoint (from its route's metadata), or null for any other route.</summary>
    public static string? OperationOf(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<LockOperationMetadata>()?.Label;

    public static void Record(HttpContext http, Endpoint? endpoint, string? route, int status, bool cancelled, double elapsedSeconds)
    {
        HttpChildren.GetOrAdd(new HttpSeries(endpoint, MethodOf(http.Request.Method), status, route ?? string.Empty), static k => HttpDuration.WithLabels(
            k.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), k.Method, string.Empty, string.Empty, k.Route))
            .Observe(elapsedSeconds);

        var operation = OperationIndex(endpoint);
        if (operation < 0)
        {
            return;
        }

        OperationCounters[operation][cancelled ? Cancelled : OutcomeOf(Verbs[operation], status)].Inc();
        Durations[operation].Observe(elapsedSeconds);
        if (http.Features.Get<WaitedFeature>() is not null)
        {
            LockMetrics.WaitDuration.Observe(elapsedSeconds);
        }
    }

    /// <summary>The method, or "OTHER" for a method outside the standard set (bounded label values and log fields).</summary>
    public static string MethodOf(string method)
    {
        foreach (var known in KnownMethods)
        {
            if (ReferenceEquals(method, known) || string.Equals(method, known, StringComparison.Ordinal))
            {
                return known;
            }
        }

        return "OTHER";
    }

    private static int OperationIndex(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<LockOperationMetadata>() is { } metadata ? (int)metadata.Operation : -1;

    private static int OutcomeOf(int operation, int status) => (operation, status) switch
    {
        (Acquire, 201 or 200) => Acquired,   // 200: a lock held by a stream
        (Acquire, 409) => Held,
        (Release, 204) => Released,
        (Extend, 200) => Extended,
        (Inspect, 200) => Held,
        (_, 401) => Unauthorized,
        (_, 404) => NotHeld,
        (_, 429) => Rejected,
        (_, 503) => Error,
        (_, >= 400 and < 500) => Invalid,
        _ => Error,
    };

    /// <summary>
    /// One labelled series, looked up by the endpoint object and the method constant (by reference, so a lookup
    /// hashes no strings); the route template is carried along for the label, and is the same for one endpoint.
    /// </summary>
    private readonly struct HttpSeries(Endpoint? endpoint, string method, int status, string route) : IEquatable<HttpSeries>
    {
        public Endpoint? Endpoint { get; } = endpoint;

        public string Method { get; } = method;

        public int Status { get; } = status;

        public string Route { get; } = route;

        public bool Equals(HttpSeries other) =>
            ReferenceEquals(Endpoint, other.Endpoint) && ReferenceEquals(Method, other.Method) && Status == other.Status
            && (Endpoint is not null || string.Equals(Route, other.Route, StringComparison.Ordinal));

        public override bool Equals(object? obj) => obj is HttpSeries other && Equals(other);

        public override int GetHashCode() =>
            HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Endpoint), System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Method), Status);
    }
}
