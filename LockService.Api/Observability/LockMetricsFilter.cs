using System.Collections.Concurrent;
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

    // Labelled children resolved once: WithLabels looks the label values up on every call.
    private static readonly ConcurrentDictionary<(string Operation, string Outcome), Counter.Child> OperationCounters = new();
    private static readonly ConcurrentDictionary<string, Histogram.Child> Durations = new(StringComparer.Ordinal);

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var operation = OperationOf(http.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName);
        var started = Stopwatch.GetTimestamp();
        string outcome = "error";
        try
        {
            var result = await next(context);
            outcome = OutcomeOf(operation, StatusOf(result));
            return result;
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex))
        {
            LockMetrics.RedisErrors.Inc();
            LogRedisUnavailable(logger, operation ?? "lock", ex.GetType().Name);
            http.Response.Headers.RetryAfter = "1";
            return Problems.RedisDown(redis.Value.TimeoutMs);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            outcome = "cancelled";
            throw;
        }
        finally
        {
            if (operation is not null)
            {
                var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
                OperationCounters.GetOrAdd((operation, outcome), static k => LockMetrics.Operations.WithLabels(k.Operation, k.Outcome)).Inc();
                Durations.GetOrAdd(operation, static o => LockMetrics.RequestDuration.WithLabels(o)).Observe(elapsed);
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

    private static string? OperationOf(string? endpointName) => endpointName switch
    {
        "acquire" => "acquire",
        "release" => "release",
        "extend" => "extend",
        "inspect" or "check" => "inspect",
        _ => null,
    };

    private static string OutcomeOf(string? operation, int status) => (operation, status) switch
    {
        ("acquire", 201) => "acquired",
        ("acquire", 409) => "held",
        ("release", 204) => "released",
        ("extend", 200) => "extended",
        ("inspect", 200) => "held",
        (_, 404) => "not_held",
        (_, 429) => "rejected",
        (_, 503) => "error",
        (_, >= 400 and < 500) => "invalid",
        _ => "error",
    };

    [LoggerMessage(EventId = 1001, EventName = "RedisUnavailable", Level = LogLevel.Warning,
        Message = "Redis unavailable during {Operation} ({ExceptionType}); answered 503")]
    private static partial void LogRedisUnavailable(ILogger logger, string operation, string exceptionType);
}
