using System.Collections.Concurrent;
using LockService.Api.Locks;
using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// What every request adds to the metrics: http_request_duration_seconds, and for lease requests the operation
/// counters and latency histograms. Labelled children are resolved once and cached, never per request.
/// </summary>
internal static class RequestMetrics
{
    private static readonly string[] Outcomes = ["acquired", "held", "full", "released", "extended", "not_held", "rejected", "invalid", "error", "cancelled", "unauthorized"];

    // One series per kind, operation and outcome, made at start so that every one exists (at 0) before it first counts.
    private static readonly Counter.Child[][] OperationCounters = [.. Enumerable.Range(0, LeaseOperationMetadata.Count).Select(LeaseOperationMetadata.At)
        .Select(o => Outcomes.Select(outcome => LockMetrics.Operations.WithLabels(o.KindLabel, o.Label, outcome)).ToArray())];

    private static readonly Histogram.Child[] Durations =
        [.. Enumerable.Range(0, LeaseOperationMetadata.Count).Select(LeaseOperationMetadata.At).Select(o => LockMetrics.RequestDuration.WithLabels(o.KindLabel, o.Label))];

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

    /// <summary>The lease operation of an endpoint (from its route's metadata, as "lock acquire"), or null for any other route.</summary>
    public static string? OperationOf(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<LeaseOperationMetadata>() is { } o ? o.KindLabel + " " + o.Label : null;

    public static void Record(HttpContext http, Endpoint? endpoint, string? route, int status, bool cancelled, double elapsedSeconds)
    {
        HttpChildren.GetOrAdd(new HttpSeries(endpoint, MethodOf(http.Request.Method), status, route ?? string.Empty), static k => HttpDuration.WithLabels(
            k.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), k.Method, string.Empty, string.Empty, k.Route))
            .Observe(elapsedSeconds);

        if (endpoint?.Metadata.GetMetadata<LeaseOperationMetadata>() is not { } operation)
        {
            return;
        }

        var outcome = cancelled ? LeaseOutcome.Cancelled : http.Features.Get<LeaseOutcomeFeature>()?.Outcome ?? UnansweredOutcome(status);
        OperationCounters[operation.Index][(int)outcome].Inc();
        Durations[operation.Index].Observe(elapsedSeconds);
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

    // A request no handler answered: refused before it (no API key, a rate limit, bad input the pipeline caught) or failed
    // (Redis trouble, a bug).
    private static LeaseOutcome UnansweredOutcome(int status) => status switch
    {
        401 => LeaseOutcome.Unauthorized,
        429 => LeaseOutcome.Rejected,
        >= 400 and < 500 => LeaseOutcome.Invalid,
        _ => LeaseOutcome.Error,
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
