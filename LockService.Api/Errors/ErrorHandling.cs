using LockService.Api.Observability;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.Extensions.Options;

namespace LockService.Api.Errors;

internal static class ErrorHandling
{
    /// <summary>Problem details for every error, and the one handler of exceptions that escape the endpoints.</summary>
    public static IServiceCollection AddLockErrors(this IServiceCollection services) =>
        services.AddProblemDetails().AddSingleton<ErrorHandler>();
}

/// <summary>
/// The last word on errors: Redis trouble is a 503 with Retry-After, anything else unexpected a 500 that says
/// nothing of the exception; routing's bare 404 and 405 get the same problem shape as the rest. Called by the
/// request middleware (<see cref="RequestMiddleware"/>), which wraps every request.
/// </summary>
internal sealed partial class ErrorHandler(IOptions<RedisOptions> redis, ILogger<ErrorHandler> logger)
{
    /// <summary>Answers an exception that escaped the endpoints; the response must not have started.</summary>
    public async Task AnswerAsync(HttpContext http, Exception exception)
    {
        http.Response.Clear();
        if (RedisFaults.IsUnavailable(exception))
        {
            // An outage, not a bug: logged by exception type only, whose message may quote what the request carried.
            LockMetrics.RedisErrors.Inc();
            LogRedisUnavailable(logger, RequestMetrics.OperationOf(http.GetEndpoint()) ?? "request", exception.GetType().Name);
            http.Response.Headers.RetryAfter = "1";
            await Problems.RedisDown(redis.Value.TimeoutMs).ExecuteAsync(http);
            return;
        }

        if (RedisFaults.IsBadData(exception))
        {
            // Not a bug of the service nor an outage: a key someone else wrote. The detail names the key, never a value.
            var what = RedisFaults.BadDataDetail(exception);
            LogRedisDataInvalid(logger, RequestMetrics.OperationOf(http.GetEndpoint()) ?? "request", what);
            await Problems.RedisData(what).ExecuteAsync(http);
            return;
        }

        // A 500 is a bug to fix, so the event carries the exception and its stack, with tokens redacted from its text.
        LogUnexpected(logger, Logging.Redacted(exception), exception.GetType().Name, ErrorCodeOf(exception));
        await Problems.Internal().ExecuteAsync(http);
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

        var problem = response.StatusCode == StatusCodes.Status404NotFound ? Problems.NoRoute() : Problems.WrongMethod(http.Request.Method);
        return problem.ExecuteAsync(http);
    }

    // A Redis error reply's code ("ERR", "WRONGTYPE", ...): says what failed without quoting anything the request
    // carried, which the rest of the message may do.
    private static string ErrorCodeOf(Exception exception) =>
        exception is StackExchange.Redis.RedisServerException server && server.Message.Split(' ', 2)[0] is { Length: > 0 and <= 20 } code
            && code.All(char.IsAsciiLetterUpper) ? code : "-";

    [LoggerMessage(EventId = 1001, EventName = "RedisUnavailable", Level = LogLevel.Warning,
        Message = "Redis unavailable during {Operation} ({ExceptionType}); answered 503")]
    private static partial void LogRedisUnavailable(ILogger logger, string operation, string exceptionType);

    [LoggerMessage(EventId = 1003, EventName = "RedisDataInvalid", Level = LogLevel.Warning,
        Message = "Redis holds data this service did not write, found during {Operation}: {What}; answered 503")]
    private static partial void LogRedisDataInvalid(ILogger logger, string operation, string what);

    [LoggerMessage(EventId = 1002, EventName = "UnexpectedError", Level = LogLevel.Error, Message = "Unexpected {ExceptionType} ({RedisErrorCode}) answered with 500")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string exceptionType, string redisErrorCode);
}
