using LockService.Api.Observability;

namespace LockService.Api.Errors;

/// <summary>
/// The last word on errors: Redis trouble is a 503 with Retry-After, anything else unexpected a 500 that says
/// nothing of the exception; routing's bare 404 and 405 get the same problem shape as the rest. Called by the
/// request middleware (<see cref="Observability.RequestMiddleware"/>), which wraps every request.
/// </summary>
internal static partial class ErrorHandling
{
    public static IServiceCollection AddLockErrors(this IServiceCollection services) => services.AddProblemDetails();

    /// <summary>Answers an exception that escaped the endpoints; the response must not have started.</summary>
    public static async Task AnswerAsync(HttpContext http, Exception exception, bool redisUnavailable, int redisTimeoutMs, ILogger logger)
    {
        http.Response.Clear();
        if (redisUnavailable)
        {
            http.Response.Headers.RetryAfter = "1";
            await Problems.RedisDown(redisTimeoutMs).ExecuteAsync(http);
            return;
        }

        // A 500 is a bug to fix, so the event carries the exception and its stack, with tokens redacted from its text.
        LogUnexpected(logger, Logging.Redacted(exception), exception.GetType().Name, ErrorCodeOf(exception));
        await Problems.Create(500, Problems.InternalError, "Internal error.", "The service failed unexpectedly; this is a bug. The error is logged.").ExecuteAsync(http);
    }

    /// <summary>A 404 or 405 that routing answered without a body gets a problem body.</summary>
    public static Task AnswerBareStatusAsync(HttpContext http)
    {
        var response = http.Response;
        if (response.StatusCode is not (StatusCodes.Status404NotFound or StatusCodes.Status405MethodNotAllowed)
            || response.HasStarted || response.ContentLength is not null || !string.IsNullOrEmpty(response.ContentType))
        {
            return Task.CompletedTask;
        }

        var problem = response.StatusCode == StatusCodes.Status404NotFound
            ? Problems.Create(404, Problems.NotFound, "Not found.", "No such route. The lock API is under /locks; see /swagger.")
            : Problems.WrongMethod(http.Request.Method);
        return problem.ExecuteAsync(http);
    }

    // A Redis error reply's code ("ERR", "WRONGTYPE", ...): says what failed without quoting anything the request
    // carried, which the rest of the message may do.
    private static string ErrorCodeOf(Exception exception) =>
        exception is StackExchange.Redis.RedisServerException server && server.Message.Split(' ', 2)[0] is { Length: > 0 and <= 20 } code
            && code.All(char.IsAsciiLetterUpper) ? code : "-";

    [LoggerMessage(EventId = 1002, EventName = "UnexpectedError", Level = LogLevel.Error, Message = "Unexpected {ExceptionType} ({RedisErrorCode}) answered with 500")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string exceptionType, string redisErrorCode);
}
