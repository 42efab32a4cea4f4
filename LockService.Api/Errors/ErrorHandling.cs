using LockService.Core.Locks;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;

namespace LockService.Api.Errors;

/// <summary>
/// The last word on errors: Redis trouble outside the lock routes is a 503, anything else unexpected a 500
/// that says nothing of the exception; routing's bare 404 and 405 get the same problem shape as the rest.
/// </summary>
internal static partial class ErrorHandling
{
    public static IServiceCollection AddLockErrors(this IServiceCollection services)
    {
        services.AddProblemDetails();
        services.AddExceptionHandler<LastResortExceptionHandler>();
        return services;
    }

    public static IApplicationBuilder UseLockErrors(this IApplicationBuilder app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            var problem = http.Response.StatusCode switch
            {
                StatusCodes.Status404NotFound => Problems.Create(404, Problems.NotFound, "Not found.", "No such route. The lock API is under /locks; see /swagger."),
                StatusCodes.Status405MethodNotAllowed => Problems.WrongMethod(http.Request.Method),
                _ => null,
            };
            if (problem is not null)
            {
                await problem.ExecuteAsync(http);
            }
        });
        return app;
    }

    private sealed partial class LastResortExceptionHandler(IOptions<RedisOptions> redis, ILogger<LastResortExceptionHandler> logger) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken cancellationToken)
        {
            if (exception is OperationCanceledException && http.RequestAborted.IsCancellationRequested)
            {
                return false;
            }

            if (RedisFaults.IsUnavailable(exception))
            {
                http.Response.Headers.RetryAfter = "1";
                await Problems.RedisDown(redis.Value.TimeoutMs).ExecuteAsync(http);
                return true;
            }

            LogUnexpected(logger, exception.GetType().Name);
            await Problems.Create(500, Problems.InternalError, "Internal error.", "The service failed unexpectedly; this is a bug. The error is logged.").ExecuteAsync(http);
            return true;
        }

        [LoggerMessage(EventId = 1002, EventName = "UnexpectedError", Level = LogLevel.Error, Message = "Unexpected {ExceptionType} answered with 500")]
        private static partial void LogUnexpected(ILogger logger, string exceptionType);
    }
}
