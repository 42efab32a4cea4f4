using System.Diagnostics;
using LockService.Api.Errors;
using LockService.Core.Locks;
using Microsoft.Extensions.Options;
using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// Counts and times every lock request, and turns Redis being unreachable or slow into a fast 503 with
/// Retry-After (the one place that does, so no handler catches exceptions of its own). The last middleware before
/// the endpoint runs (after authentication and rate limiting), so it sees exactly the requests a handler answers.
/// A middleware rather than an endpoint filter: a filter makes every lock request box its arguments and result.
/// </summary>
internal sealed partial class LockMetricsMiddleware(RequestDelegate next, IOptions<RedisOptions> redis, ILogger<LockMetricsMiddleware> logger)
{
    public const string WaitedItem = "lockservice.waited";

    private const int Acquire = 0, Release = 1, Extend = 2, Inspect = 3;
    private const int Acquired = 0, Held = 1, Released = 2, Extended = 3, NotHeld = 4, Rejected = 5, Invalid = 6, Error = 7, Cancelled = 8;
    private static readonly string[] Operations = ["acquire", "release", "extend", "inspect"];
    private static readonly string[] Outcomes = ["acquired", "held", "released", "extended", "not_held", "rejected", "invalid", "error", "cancelled"];

    // Every labelled child resolved once, up front: WithLabels looks the label values up on every call.
    private static readonly Counter.Child[][] OperationCounters =
        Operations.Select(operation => Outcomes.Select(outcome => LockMetrics.Operations.WithLabels(operation, outcome)).ToArray()).ToArray();

    private static readonly Histogram.Child[] Durations = Operations.Select(operation => LockMetrics.RequestDuration.WithLabels(operation)).ToArray();

    public Task InvokeAsync(HttpContext http)
    {
        var operation = OperationOf(http.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName);
        return operation < 0 ? next(http) : MeasureAsync(http, operation);
    }

    private async Task MeasureAsync(HttpContext http, int operation)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = Error;
        try
        {
            await next(http);
            outcome = OutcomeOf(operation, http.Response.StatusCode);
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex) && !http.Response.HasStarted)
        {
            LockMetrics.RedisErrors.Inc();
            LogRedisUnavailable(logger, Operations[operation], ex.GetType().Name);
            http.Response.Clear();
            http.Response.Headers.RetryAfter = "1";
            await Problems.RedisDown(redis.Value.TimeoutMs).ExecuteAsync(http);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            outcome = Cancelled;
            throw;
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            OperationCounters[operation][outcome].Inc();
            Durations[operation].Observe(elapsed);
            if (http.Items.TryGetValue(WaitedItem, out var waited) && waited is true)
            {
                LockMetrics.WaitDuration.Observe(elapsed);
            }
        }
    }

    private static int OperationOf(string? endpointName) => endpointName switch
    {
        "acquire" => Acquire,
        "release" => Release,
        "extend" => Extend,
        "inspect" or "check" => Inspect,
        _ => -1,
    };

    private static int OutcomeOf(int operation, int status) => (operation, status) switch
    {
        (Acquire, 201) => Acquired,
        (Acquire, 409) => Held,
        (Release, 204) => Released,
        (Extend, 200) => Extended,
        (Inspect, 200) => Held,
        (_, 404) => NotHeld,
        (_, 429) => Rejected,
        (_, 503) => Error,
        (_, >= 400 and < 500) => Invalid,
        _ => Error,
    };

    [LoggerMessage(EventId = 1001, EventName = "RedisUnavailable", Level = LogLevel.Warning,
        Message = "Redis unavailable during {Operation} ({ExceptionType}); answered 503")]
    private static partial void LogRedisUnavailable(ILogger logger, string operation, string exceptionType);
}
