using System.Diagnostics;
using LockService.Api.Errors;

namespace LockService.Api.Observability;

/// <summary>
/// The one middleware around every request, first in the pipeline: it answers what escaped the endpoints (Redis
/// trouble as a 503, anything else as a 500, routing's bare 404/405 as problems), then records the request's
/// metrics and writes its request line, all from one measurement. One async frame instead of four separate
/// middlewares (errors, HTTP histogram, lock metrics, request log), each of which cost an allocation and a
/// continuation on every request.
/// </summary>
internal sealed class RequestMiddleware(RequestDelegate next, ErrorHandler errors, Serilog.ILogger requestLog)
{
    public async Task InvokeAsync(HttpContext http)
    {
        var started = Stopwatch.GetTimestamp();
        var cancelled = false;
        try
        {
            await next(http);
            await ErrorHandler.AnswerBareStatusAsync(http);
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
            await errors.AnswerAsync(http, ex);
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
}
