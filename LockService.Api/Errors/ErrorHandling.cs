using LockService.Core.Locks;
using Microsoft.Extensions.Options;

namespace LockService.Api.Errors;

/// <summary>
/// The last word on errors: Redis trouble outside the lock routes is a 503, anything else unexpected a 500
/// that says nothing of the exception; routing's bare 404 and 405 get the same problem shape as the rest.
/// </summary>
internal static partial class ErrorHandling
{
    public static IServiceCollection AddLockErrors(this IServiceCollection services) => services.AddProblemDetails();

    /// <summary>
    /// One middleware for what UseExceptionHandler and UseStatusCodePages would do in two, each with its own
    /// per-request work: catch what escaped the endpoints, and give routing's bare 404 and 405 a problem body.
    /// </summary>
    public static IApplicationBuilder UseLockErrors(this IApplicationBuilder app) => app.UseMiddleware<ErrorMiddleware>();

    private sealed partial class ErrorMiddleware(RequestDelegate next, IOptions<RedisOptions> redis, ILogger<ErrorMiddleware> logger)
    {
        public async Task InvokeAsync(HttpContext http)
        {
            try
            {
                await next(http);
            }
            catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
            {
                // The client is gone: nobody reads an answer. 499 is what the request log records.
                if (!http.Response.HasStarted)
                {
                    http.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
                }

                return;
            }
            catch (Exception ex) when (!http.Response.HasStarted)
            {
                http.Response.Clear();
                if (RedisFaults.IsUnavailable(ex))
                {
                    http.Response.Headers.RetryAfter = "1";
                    await Problems.RedisDown(redis.Value.TimeoutMs).ExecuteAsync(http);
                    return;
                }

                LogUnexpected(logger, ex.GetType().Name);
                await Problems.Create(500, Problems.InternalError, "Internal error.", "The service failed unexpectedly; this is a bug. The error is logged.").ExecuteAsync(http);
                return;
            }

            var response = http.Response;
            if (response.StatusCode is StatusCodes.Status404NotFound or StatusCodes.Status405MethodNotAllowed
                && !response.HasStarted && response.ContentLength is null && string.IsNullOrEmpty(response.ContentType))
            {
                var problem = response.StatusCode == StatusCodes.Status404NotFound
                    ? Problems.Create(404, Problems.NotFound, "Not found.", "No such route. The lock API is under /locks; see /swagger.")
                    : Problems.WrongMethod(http.Request.Method);
                await problem.ExecuteAsync(http);
            }
        }

        [LoggerMessage(EventId = 1002, EventName = "UnexpectedError", Level = LogLevel.Error, Message = "Unexpected {ExceptionType} answered with 500")]
        private static partial void LogUnexpected(ILogger logger, string exceptionType);
    }
}
