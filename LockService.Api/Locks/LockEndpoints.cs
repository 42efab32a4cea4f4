using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Api.RateLimiting;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace LockService.Api.Locks;

/// <summary>The route table of the lock API and its handlers, which only translate between HTTP and the engine.</summary>
internal static class LockEndpoints
{
    private static readonly string[] AcquireParameters = [LockParameterReader.TtlMs, LockParameterReader.WaitMs, LockParameterReader.Owner];
    private static readonly string[] ExtendParameters = [LockParameterReader.TtlMs];

    // The methods mapped below on /locks/{key} and on /locks/{key}/{token}, for the Allow header of a 405.
    private static readonly string[] KeyRouteMethods = [HttpMethods.Get, HttpMethods.Post];
    private static readonly string[] TokenRouteMethods = [HttpMethods.Delete, HttpMethods.Get, HttpMethods.Patch];

    public static IEndpointRouteBuilder MapLockEndpoints(this IEndpointRouteBuilder app)
    {
        var locks = app.MapGroup("/locks")
            .WithTags("Locks")
            .RequireLockAuthorization()
            .RequireLockRateLimit()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        locks.MapPost("/{key}", AcquireAsync).WithName("acquire")
            .WithSummary("Acquire a lock, optionally waiting in the server for it")
            .WithDescription("201 with the lease; 409 lock_held (with Retry-After) when held and waitMs ran out; 429 when the instance has Locks:MaxWaiters waiting.")
            .WithParameter(ParameterLocation.Query, LockParameterReader.TtlMs, JsonSchemaType.Integer, "Lock TTL in ms (default Locks:DefaultTtlMs, at most Locks:MaxTtlMs).")
            .WithParameter(ParameterLocation.Query, LockParameterReader.WaitMs, JsonSchemaType.Integer, "How long to wait in the server for a held lock, in ms (0 = do not wait; at most Locks:MaxWaitMs).")
            .WithParameter(ParameterLocation.Query, LockParameterReader.Owner, JsonSchemaType.String, "Free text shown by inspect (1-128 characters, no control characters).")
            .WithParameter(ParameterLocation.Header, "Idempotency-Key", JsonSchemaType.String, "Retry-safe acquire: a retry with the same key while the lock is held returns the same lease.")
            .WithBody<AcquireBody>()
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapDelete("/{key}/{token}", ReleaseAsync).WithName("release")
            .WithSummary("Release a lock held by this token")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapPatch("/{key}/{token}", ExtendAsync).WithName("extend")
            .WithSummary("Extend a lock held by this token: its remaining TTL becomes ttlMs from now")
            .WithParameter(ParameterLocation.Query, LockParameterReader.TtlMs, JsonSchemaType.Integer, "The new remaining TTL in ms (default: the TTL the lock was acquired with).")
            .WithBody<ExtendBody>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapGet("/{key}", InspectAsync).WithName("inspect")
            .WithSummary("Who holds a lock and for how long (never the token)")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapGet("/{key}/{token}", CheckAsync).WithName("check")
            .WithSummary("Whether this token still holds the lock")
            .ProducesProblem(StatusCodes.Status404NotFound);

        // Whatever no route above takes. Another method on a route's path is a 405 naming that route's methods; an empty
        // key (POST /locks/) or token, or a path deeper than any route (a key cannot hold '/'), is a bad key or token.
        locks.MapFallback("/{**rest}", NoRouteAsync).WithName("no-route").ExcludeFromDescription();
        return app;
    }

    private static async Task<Results<Created<LeaseResponse>, ProblemHttpResult>> AcquireAsync(
        string key,
        HttpContext http,
        LockEngine engine,
        IOptions<LockOptions> options,
        CancellationToken cancellationToken)
    {
        var limits = options.Value;
        var (parameters, problem) = await ReadRequestAsync(http, key, token: null, AcquireParameters, limits, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var request = new AcquireRequest(parameters.TtlMs ?? limits.DefaultTtlMs, parameters.WaitMs ?? 0, parameters.Owner, parameters.IdempotencyKey);
        var result = await engine.AcquireAsync(new LockName(http.TenantOf(), key), request, cancellationToken);
        if (result.Waited)
        {
            http.Items[RequestMetrics.WaitedItem] = true;
        }

        switch (result.Status)
        {
            case AcquireStatus.Acquired:
                var lease = result.Lease!;
                return TypedResults.Created($"/locks/{key}/{lease.Token}", LeaseResponse.From(lease));
            case AcquireStatus.TooManyWaiters:
                http.Response.Headers.RetryAfter = "1";
                return Problems.TooManyWaiters(limits.MaxWaiters);
            default:
                http.Response.Headers.RetryAfter = Problems.RetryAfterSeconds(result.RetryAfterMs);
                return Problems.Held(key, result.RetryAfterMs);
        }
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ReleaseAsync(
        string key, string token, HttpContext http, LockEngine engine, IOptions<LockOptions> options, CancellationToken cancellationToken)
    {
        if ((await ReadRequestAsync(http, key, token, [], options.Value, cancellationToken)).Problem is { } problem)
        {
            return problem;
        }

        return await engine.ReleaseAsync(new LockName(http.TenantOf(), key), token)
            ? TypedResults.NoContent()
            : Problems.NotHeld(key);
    }

    private static async Task<Results<Ok<LeaseResponse>, ProblemHttpResult>> ExtendAsync(
        string key,
        string token,
        HttpContext http,
        LockEngine engine,
        IOptions<LockOptions> options,
        CancellationToken cancellationToken)
    {
        var (parameters, problem) = await ReadRequestAsync(http, key, token, ExtendParameters, options.Value, cancellationToken);
        if (problem is not null)
        {
            return problem;
        }

        var lease = await engine.ExtendAsync(new LockName(http.TenantOf(), key), token, new ExtendRequest(parameters.TtlMs));
        return lease is null ? Problems.NotHeld(key) : TypedResults.Ok(LeaseResponse.From(lease));
    }

    private static async Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> InspectAsync(
        string key, HttpContext http, LockEngine engine, IOptions<LockOptions> options, CancellationToken cancellationToken)
    {
        if ((await ReadRequestAsync(http, key, token: null, [], options.Value, cancellationToken)).Problem is { } problem)
        {
            return problem;
        }

        var info = await engine.InspectAsync(new LockName(http.TenantOf(), key));
        return info is null ? Problems.Free(key) : TypedResults.Ok(LockInfoResponse.From(info));
    }

    private static async Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LockEngine engine, IOptions<LockOptions> options, CancellationToken cancellationToken)
    {
        if ((await ReadRequestAsync(http, key, token, [], options.Value, cancellationToken)).Problem is { } problem)
        {
            return problem;
        }

        var info = await engine.CheckAsync(new LockName(http.TenantOf(), key), token);
        return info is null ? Problems.NotHeld(key) : TypedResults.Ok(LockInfoResponse.From(info));
    }

    private static async Task<ProblemHttpResult> NoRouteAsync(HttpContext http, CancellationToken cancellationToken, string? rest = null)
    {
        // The path's shape says which route it was meant for: one part is /locks/{key}, two are /locks/{key}/{token}
        // (either part may be empty, which no route takes), more are no route at all. A trailing slash does not count,
        // as routing does not count it for the routes above (POST /locks/k/ acquires k).
        var path = rest is [.. var trimmed, '/'] ? trimmed : rest ?? string.Empty;
        var slash = path.IndexOf('/');
        var routeMethods = slash < 0 ? KeyRouteMethods : path.IndexOf('/', slash + 1) < 0 ? TokenRouteMethods : null;
        var method = http.Request.Method;
        if (routeMethods is not null && !routeMethods.Contains(method, StringComparer.OrdinalIgnoreCase))
        {
            // 405 comes before the body's 413/415 in the contract's order, so the body is not read.
            http.Response.Headers.Allow = string.Join(", ", routeMethods);
            return Problems.WrongMethod(method);
        }

        var (_, bodyProblem) = await LockParameterReader.ReadBodyAsync(http.Request, cancellationToken);
        return bodyProblem
            ?? (routeMethods == TokenRouteMethods ? TargetProblem(path[..slash], path[(slash + 1)..]) : null)
            ?? Problems.BadKey(path);
    }

    // Every lock request in the contract's order: 413/415 for the body, then 400 for the key, the token and
    // the parameters. Endpoints without parameters still answer a typo'd query parameter, or a body that is not
    // an empty JSON object, with a 400: bad input never releases a lock.
    private static async ValueTask<(LockParameters Parameters, ProblemHttpResult? Problem)> ReadRequestAsync(
        HttpContext http, string key, string? token, string[] allowed, LockOptions limits, CancellationToken cancellationToken)
    {
        var (body, bodyProblem) = await LockParameterReader.ReadBodyAsync(http.Request, cancellationToken);
        if ((bodyProblem ?? TargetProblem(key, token)) is { } problem)
        {
            return (default, problem);
        }

        Dictionary<string, string[]>? errors = null;   // created by the first error only
        var parameters = LockParameterReader.Parse(http.Request.Query, body, allowed, limits.MaxTtlMs, limits.MaxWaitMs, ref errors);
        if (allowed == AcquireParameters)
        {
            parameters = parameters with { IdempotencyKey = IdempotencyKeyOf(http.Request, ref errors) };
        }

        return errors is not null
            ? (parameters, Problems.Invalid(errors, allowed.Length == 0 ? "This endpoint takes no parameters." : "See 'errors' for what is wrong with each parameter."))
            : (parameters, null);
    }

    private static ProblemHttpResult? TargetProblem(string key, string? token)
    {
        if (!LockName.IsValid(key))
        {
            return Problems.BadKey(key);
        }

        return token is not null && !LockToken.IsValid(token) ? Problems.BadToken() : null;
    }

    private static string? IdempotencyKeyOf(HttpRequest request, ref Dictionary<string, string[]>? errors)
    {
        if (!request.Headers.TryGetValue("Idempotency-Key", out var values))
        {
            return null;
        }

        var value = values.Count == 1 ? values[0] : null;
        if (value is null || value.Length is 0 or > 128 || value.Any(c => c is < ' ' or > '~'))
        {
            (errors ??= new Dictionary<string, string[]>(StringComparer.Ordinal))["Idempotency-Key"] = ["The Idempotency-Key header must be given once, 1-128 printable ASCII characters."];
            return null;
        }

        return value;
    }
}
