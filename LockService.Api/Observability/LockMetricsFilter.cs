using System.Diagnostics;
using LockService.Api.Errors;
using LockService.Core.Locks;
using Microsoft.Extensions.Options;
using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// Counts and times every lock request, and turns Redis being unreachable or slow into a fast 503 with
/// Retry-After (the one place that does, so no handler catches exceptions of its own).
/// </summary>
internal sealed partial class LockMetricsFilter(IOptions<RedisOptions> redis, ILogger<LockMetricsFilter> logger) : IEndpointFilter
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

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var operation = OperationOf(http.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName);
        var started = Stopwatch.GetTimestamp();
        var outcome = Error;
        try
        {
            var result = await next(context);
            outcome = OutcomeOf(operation, StatusOf(result));
            return result;
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            LockMetrics.RedisErrors.Inc();
            LogRedisUnavailable(logger, operation >= 0 ? Operations[operation] : "lock", ex.GetType().Name);
            http.Response.Headers.RetryAfter = "1";
            return Problems.RedisDown(redis.Value.TimeoutMs);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            outcome = Cancelled;
            throw;
        }
        finally
        {
            if (operation >= 0)
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
    }

    // Handlers return a Results<...> union: the status is on the result inside it.
    private static int StatusOf(object? result) => result switch
    {
        INestedHttpResult nested => StatusOf(nested.Result),
        IStatusCodeHttpResult { StatusCode: { } status } => status,
        _ => StatusCodes.Status200OK,
    };

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
