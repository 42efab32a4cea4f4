using System.Diagnostics;
using LockService.Api.Errors;
using LockService.Core.Locks;
using Microsoft.Extensions.Options;

namespace LockService.Api.Observability;

/// <summary>
/// The one middleware around every request, first in the pipeline: it answers what escaped the endpoints (Redis
/// trouble as a 503, anything else as a 500, routing's bare 404/405 as problems), then records the request's
/// metrics and writes its request line, all from one measurement. One async frame instead of four separate
/// middlewares (errors, HTTP histogram, lock metrics, request log), each of which cost an allocation and a
/// continuation on every request.
/// </summary>
internal sealed partial class RequestMiddleware(RequestDelegate next, IOptions<RedisOptions> redis, Serilog.ILogger requestLog, ILogger<RequestMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext http)
    {
        var started = Stopwatch.GetTimestamp();
        var cancelled = false;
        try
        {
            await next(http);
            await ErrorHandling.AnswerBareStatusAsync(http);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client is gone: nobody reads an answer. 499 is what the request line records.
            cancelled = true;
            if (!http.Response.HasStarted)
            {
                http.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
            }
        }
        catch (Exception ex) when (!http.Response.HasStarted)
        {
            var redisUnavailable = RedisFaults.IsUnavailable(ex);
            if (redisUnavailable)
            {
                LockMetrics.RedisErrors.Inc();
                LogRedisUnavailable(logger, RequestMetrics.OperationOf(http.GetEndpoint()) ?? "request", ex.GetType().Name);
            }

            // A 503 is logged by exception type only: an outage, not a bug. A 500 carries the exception, tokens redacted.
            await ErrorHandling.AnswerAsync(http, ex, redisUnavailable, redis.Value.TimeoutMs, logger);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            var endpoint = http.GetEndpoint();
            var route = (endpoint as RouteEndpoint)?.RoutePattern.RawText;
            var status = http.Response.StatusCode;
            RequestMetrics.Record(http, endpoint, route, status, cancelled, elapsed.TotalSeconds);
            Logging.RequestLog.Write(requestLog, http, route, status, elapsed.TotalMilliseconds);
        }
    }

    [LoggerMessage(EventId = 1001, EventName = "RedisUnavailable", Level = LogLevel.Warning,
        Message = "Redis unavailable during {Operation} ({ExceptionType}); answered 503")]
    private static partial void LogRedisUnavailable(ILogger logger, string operation, string exceptionType);
}
