using System.Globalization;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.Errors;

/// <summary>
/// Builds every problem response of the service, so each 4xx and 5xx has the same RFC 9457 shape and a stable
/// machine-readable <c>code</c>. Details say what was wrong; they never carry an exception's message.
/// </summary>
internal static class Problems
{
    public const string InvalidKey = "invalid_key";
    public const string InvalidToken = "invalid_token";
    public const string InvalidParameter = "invalid_parameter";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string NotFound = "not_found";
    public const string LockNotHeld = "lock_not_held";
    public const string MethodNotAllowed = "method_not_allowed";
    public const string LockHeld = "lock_held";
    public const string PermitNotHeld = "permit_not_held";
    public const string SemaphoreFull = "semaphore_full";
    public const string SemaphoreEmpty = "semaphore_empty";
    public const string PayloadTooLarge = "payload_too_large";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string TooManyRequests = "too_many_requests";
    public const string RedisUnavailable = "redis_unavailable";
    public const string RedisDataInvalid = "redis_data_invalid";
    public const string InternalError = "internal_error";

    public static ProblemHttpResult Create(int status, string code, string title, string detail, IDictionary<string, object?>? extensions = null)
    {
        var members = new Dictionary<string, object?>(StringComparer.Ordinal) { ["code"] = code };
        if (extensions is not null)
        {
            foreach (var (name, value) in extensions)
            {
                members[name] = value;
            }
        }

        return TypedResults.Problem(detail, instance: null, status, title, TypeOf(code), members);
    }

    /// <summary>The 400 for what is wrong with a request's parameters, or null when nothing is.</summary>
    public static ProblemHttpResult? Invalid(RequestErrors? errors, Locks.OperationParameters operation) =>
        errors is null
            ? null
            : Invalid(errors.ByName, operation.Parameters.Length == 0 ? "This endpoint takes no parameters." : "See 'errors' for what is wrong with each parameter.");

    /// <summary>A 400 whose <c>errors</c> member is keyed by parameter name, as ASP.NET's ValidationProblemDetails.</summary>
    public static ProblemHttpResult Invalid(IReadOnlyDictionary<string, string[]> errors, string detail) => Create(
        StatusCodes.Status400BadRequest,
        InvalidParameter,
        "One or more parameters are invalid.",
        detail,
        new Dictionary<string, object?>(StringComparer.Ordinal) { ["errors"] = errors });

    /// <summary>A key outside the contract's rules, for a lock's route or (<paramref name="noun"/> "semaphore") a semaphore's.</summary>
    public static ProblemHttpResult BadKey(string? key, string noun = "lock") => Create(
        StatusCodes.Status400BadRequest,
        InvalidKey,
        "The key is invalid.",
        key is null or { Length: 0 }
            ? $"A {noun} key is required: POST /{noun}s/{{key}}. {LeaseName.Rule}"
            : $"This is not a valid {noun} key. {LeaseName.Rule}");

    public static ProblemHttpResult BadToken() => Create(
        StatusCodes.Status400BadRequest,
        InvalidToken,
        "The token is invalid.",
        "A token is the 32 lowercase hexadecimal characters returned by the acquire.");

    /// <summary>A token that does not hold its lock, with why (the member <c>reason</c>).</summary>
    public static ProblemHttpResult NotHeld(string key, LeaseEnd reason) =>
        Ended(LockNotHeld, "The lock is not held.", $"Lock '{key}' is not held by this token", "this lock", reason);

    /// <summary>A token that holds no permit of its semaphore, with why (the member <c>reason</c>).</summary>
    public static ProblemHttpResult NotHeldPermit(string key, LeaseEnd reason) =>
        Ended(PermitNotHeld, "The permit is not held.", $"No permit of semaphore '{key}' is held by this token", "a permit of it", reason);

    private static ProblemHttpResult Ended(string code, string title, string notHeld, string what, LeaseEnd reason) => Create(
        StatusCodes.Status404NotFound,
        code,
        title,
        reason switch
        {
            LeaseEnd.Released => $"{notHeld}: it was released.",
            LeaseEnd.Forced => $"{notHeld}: an operator force-released it.",
            LeaseEnd.Expired => $"{notHeld}: its TTL or its hold cap (maxHoldMs) ran out.",
            _ => $"{notHeld}, and the service does not remember it (it never held {what}, or its lease ended long ago).",
        },
        new Dictionary<string, object?>(StringComparer.Ordinal) { ["reason"] = ReasonOf(reason) });

    /// <summary>The wire name of a lease's end: released, forced, expired, unavailable (streams only) or unknown.</summary>
    public static string ReasonOf(LeaseEnd reason) => reason switch
    {
        LeaseEnd.Released => "released",
        LeaseEnd.Forced => "forced",
        LeaseEnd.Expired => "expired",
        LeaseEnd.Unavailable => "unavailable",
        _ => "unknown",
    };

    public static ProblemHttpResult Free(string key) => Create(
        StatusCodes.Status404NotFound,
        LockNotHeld,
        "The lock is not held.",
        $"Lock '{key}' is free.");

    /// <summary>An operator's force-release of a semaphore slot that no permit holds.</summary>
    public static ProblemHttpResult SlotFree(string key, int slot) => Create(
        StatusCodes.Status404NotFound,
        PermitNotHeld,
        "The permit is not held.",
        $"Slot {slot} of semaphore '{key}' is free.");

    public static ProblemHttpResult Empty(string key) => Create(
        StatusCodes.Status404NotFound,
        SemaphoreEmpty,
        "The semaphore is empty.",
        $"Semaphore '{key}' has no permit held.");

    /// <summary>No place for this caller: <paramref name="held"/> permits are held, at least its limit.</summary>
    public static ProblemHttpResult Full(string key, int held, int limit, long retryAfterMs) => Create(
        StatusCodes.Status409Conflict,
        SemaphoreFull,
        "The semaphore is full.",
        $"Semaphore '{key}' has {held} permits held, and this request's limit is {limit}; its earliest permit expires in {retryAfterMs} ms.",
        new Dictionary<string, object?> { ["retryAfterMs"] = retryAfterMs });

    public static ProblemHttpResult Held(string key, long retryAfterMs) => Create(
        StatusCodes.Status409Conflict,
        LockHeld,
        "The lock is held by someone else.",
        $"Lock '{key}' is held; its holder's TTL runs out in {retryAfterMs} ms.",
        new Dictionary<string, object?> { ["retryAfterMs"] = retryAfterMs });

    /// <summary>No room for another waiting request: on the instance, or in the tenant's share of it.</summary>
    public static ProblemHttpResult TooManyWaiters(NoRoom refused, LeaseOptions limits) =>
        NoRoomFor(refused, limits, limits.MaxWaiters, "requests waiting", nameof(LeaseOptions.MaxWaiters), "Retry later, or use waitMs=0.");

    /// <summary>No room for another watch: on the instance, or in the tenant's share of it.</summary>
    public static ProblemHttpResult TooManyWatchers(NoRoom refused, LeaseOptions limits) =>
        NoRoomFor(refused, limits, limits.MaxWatchers, "watches open", nameof(LeaseOptions.MaxWatchers), "Retry later, or check without waitMs.");

    /// <summary>No room for another lease-holding stream: on the instance, or in the tenant's share of it. Nothing was acquired.</summary>
    public static ProblemHttpResult TooManyStreams(NoRoom refused, LeaseOptions limits) =>
        NoRoomFor(refused, limits, limits.MaxStreams, "lease-holding streams open", nameof(LeaseOptions.MaxStreams), "Nothing was acquired. Retry later, or acquire without Accept: text/event-stream.");

    /// <summary>The rate limiter's 429; its caller sets Retry-After.</summary>
    public static ProblemHttpResult RateLimited() => TooMany(
        "This client has used up its rate limit (RateLimit:PermitsPerSecond); retry after the time in Retry-After.");

    /// <summary>A path that no route matches.</summary>
    public static ProblemHttpResult NoRoute() => Create(
        StatusCodes.Status404NotFound,
        NotFound,
        "Not found.",
        "No such route. The API is under /locks and /semaphores (operators: /admin); see /swagger.");

    /// <summary>The 500 for an unexpected exception: it says nothing of the exception, which is logged instead.</summary>
    public static ProblemHttpResult Internal() => Create(
        StatusCodes.Status500InternalServerError,
        InternalError,
        "Internal error.",
        "The service failed unexpectedly; this is a bug. The error is logged.");

    public static ProblemHttpResult RedisDown(int timeoutMs) => Create(
        StatusCodes.Status503ServiceUnavailable,
        RedisUnavailable,
        "Redis is unavailable.",
        $"Redis could not be reached or did not answer within {timeoutMs} ms. Nothing was changed by this request that will outlive its lock's TTL; retry shortly.");

    /// <summary>
    /// A key of the name holds what this service never writes there (a key of another type, a value written by hand, a
    /// lock made persistent): nothing was changed, and retrying does not help until an operator fixes or deletes the key,
    /// so no Retry-After. A 503, not a 4xx: the request was fine, the service's store is not.
    /// </summary>
    public static ProblemHttpResult RedisData(string what) => Create(
        StatusCodes.Status503ServiceUnavailable,
        RedisDataInvalid,
        "Redis holds data this service did not write.",
        $"{what} Nothing was changed by this request; this name cannot be used until an operator fixes or deletes that key.");

    public static ProblemHttpResult TooLarge(int limit) => Create(
        StatusCodes.Status413PayloadTooLarge,
        PayloadTooLarge,
        "The request body is too large.",
        $"Request bodies are limited to {limit} bytes.");

    public static ProblemHttpResult NotJson(string? contentType) => Create(
        StatusCodes.Status415UnsupportedMediaType,
        UnsupportedMediaType,
        "The request body is not JSON.",
        $"The body's content type '{contentType ?? "(none)"}' is not supported: send a JSON object in UTF-8 with Content-Type: application/json, or pass the parameters in the query string.");

    public static ProblemHttpResult WrongMethod(string method) => Create(
        StatusCodes.Status405MethodNotAllowed,
        MethodNotAllowed,
        "Method not allowed.",
        $"{method} is not allowed on this route; see the Allow header.");

    /// <summary>The 401 of a request without a valid API key, while keys are configured (the caller sets WWW-Authenticate).</summary>
    public static ProblemHttpResult ApiKeyRequired() => Create(
        StatusCodes.Status401Unauthorized,
        Unauthorized,
        "An API key is required.",
        "Send 'Authorization: Bearer <api-key>' with a key configured in Auth:ApiKeys.");

    /// <summary>The 403 of an operator endpoint for a caller that may not use it; <paramref name="detail"/> says why.</summary>
    public static ProblemHttpResult OperatorsOnly(string detail) => Create(
        StatusCodes.Status403Forbidden,
        Forbidden,
        "Forbidden.",
        detail);

    /// <summary>Whole seconds, rounded up, for a Retry-After header.</summary>
    public static string RetryAfterSeconds(long milliseconds) =>
        ((milliseconds + 999) / 1000).ToString(CultureInfo.InvariantCulture);

    // The tenant's share is named apart from the instance's bound, so that a tenant at its share knows the others are not
    // the cause (and an operator knows which setting to raise).
    private static ProblemHttpResult NoRoomFor(NoRoom refused, LeaseOptions limits, int bound, string what, string setting, string advice) => TooMany(
        refused == NoRoom.Tenant
            ? $"This tenant already has {limits.TenantShare(bound)} {what} on this instance, its share of Locks:{setting} (Locks:{nameof(LeaseOptions.MaxWaitersPerTenant)}). {advice}"
            : $"This instance already has {bound} {what} (Locks:{setting}). {advice}");

    private static ProblemHttpResult TooMany(string detail) =>
        Create(StatusCodes.Status429TooManyRequests, TooManyRequests, "Too many requests.", detail);

    private static string TypeOf(string code) => "urn:lockservice:problem:" + code;
}
