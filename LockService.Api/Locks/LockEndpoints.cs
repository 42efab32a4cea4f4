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

        locks.MapPost("/{key}", AcquireAsync).WithName("acquire").WithOperation(LockOperation.Acquire)
            .WithSummary("Acquire a lock, optionally waiting in the server for it; with Accept: text/event-stream, hold it for the life of the stream")
            .WithDescription("201 with the lease; 409 lock_held (with Retry-After) when held and waitMs ran out; 429 when the instance has Locks:MaxWaiters waiting. "
                + "With Accept: text/event-stream (ttlMs >= 1000, no Idempotency-Key): 200 once the lock is obtained, a stream of 'event: acquired' (the lease), "
                + "a comment after every renewal (every ttlMs/3) and 'event: lost' with {\"reason\"} (forced, expired, released, unavailable); closing the stream releases the lock.")
            .WithParameters(OperationParameters.Acquire)
            .ProducesEvents(StatusCodes.Status200OK, ("acquired", typeof(LeaseResponse)), ("lost", typeof(LostEvent)))
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapDelete("/{key}/{token}", ReleaseAsync).WithName("release").WithOperation(LockOperation.Release)
            .WithSummary("Release a lock held by this token")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapPatch("/{key}/{token}", ExtendAsync).WithName("extend").WithOperation(LockOperation.Extend)
            .WithSummary("Extend a lock held by this token: its remaining TTL becomes ttlMs from now")
            .WithParameters(OperationParameters.Extend)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapGet("/{key}", InspectAsync).WithName("inspect").WithOperation(LockOperation.Inspect)
            .WithSummary("Who holds a lock and for how long (never the token)")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapGet("/{key}/{token}", CheckAsync).WithName("check").WithOperation(LockOperation.Inspect)
            .WithSummary("Whether this token still holds the lock; with waitMs, watch it: answered at once when the lease ends")
            .WithParameters(OperationParameters.Watch)
            .ProducesProblem(StatusCodes.Status404NotFound);

        // Whatever no route above takes. Another method on a route's path is a 405 naming that route's methods; an empty
        // key (POST /locks/) or token, or a path deeper than any route (a key cannot hold '/'), is a bad key or token.
        locks.MapFallback("/{**rest}", NoRouteAsync).WithName("no-route").ExcludeFromDescription();
        return app;
    }

    private static async Task<Results<Created<LeaseResponse>, LeaseStream, ProblemHttpResult>> AcquireAsync(
        string key,
        HttpContext http,
        LockEngine engine,
        IOptions<LockOptions> options,
        CancellationToken cancellationToken)
    {
        var limits = options.Value;
        var (parameters, problem, errors) = await ReadRequestAsync(http, key, token: null, OperationParameters.Acquire, cancellationToken);
        var request = new AcquireRequest(parameters.TtlMs ?? limits.DefaultTtlMs, parameters.WaitMs ?? 0, parameters.Owner, parameters.IdempotencyKey, parameters.MaxHoldMs);
        var stream = LeaseStream.IsWanted(http.Request);
        if (stream && problem is null)
        {
            LockRules.CheckStream(request, ref errors);
        }

        if ((problem ?? Problems.Invalid(RequestErrors.Merge(errors, request.Validate(limits)), OperationParameters.Acquire)) is { } invalid)
        {
            return invalid;
        }

        var name = new LockName(http.TenantOf(), key);
        var result = await engine.AcquireAsync(name, request, cancellationToken);
        if (result.Waited)
        {
            http.Features.Set(WaitedFeature.Instance);
        }

        switch (result.Status)
        {
            case AcquireStatus.Acquired when stream:
                return new LeaseStream(engine, name, result.Lease!);
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
        string key, string token, HttpContext http, LockEngine engine, CancellationToken cancellationToken)
    {
        var (_, problem, errors) = await ReadRequestAsync(http, key, token, OperationParameters.None, cancellationToken);
        if ((problem ?? Problems.Invalid(errors, OperationParameters.None)) is { } invalid)
        {
            return invalid;
        }

        var result = await engine.ReleaseAsync(new LockName(http.TenantOf(), key), token);
        if (result.Released)
        {
            LockMetrics.HoldDuration.Observe(result.HeldMs / 1000.0);
        }

        return result.Released ? TypedResults.NoContent() : Problems.NotHeld(key, result.Ended!.Value);
    }

    private static async Task<Results<Ok<LeaseResponse>, ProblemHttpResult>> ExtendAsync(
        string key,
        string token,
        HttpContext http,
        LockEngine engine,
        IOptions<LockOptions> options,
        CancellationToken cancellationToken)
    {
        var (parameters, problem, errors) = await ReadRequestAsync(http, key, token, OperationParameters.Extend, cancellationToken);
        var request = new ExtendRequest(parameters.TtlMs);
        if ((problem ?? Problems.Invalid(RequestErrors.Merge(errors, request.Validate(options.Value)), OperationParameters.Extend)) is { } invalid)
        {
            return invalid;
        }

        var result = await engine.ExtendAsync(new LockName(http.TenantOf(), key), token, request);
        return result.Lease is { } lease ? TypedResults.Ok(LeaseResponse.From(lease)) : Problems.NotHeld(key, result.Ended!.Value);
    }

    private static async Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> InspectAsync(
        string key, HttpContext http, LockEngine engine, CancellationToken cancellationToken)
    {
        var (_, problem, errors) = await ReadRequestAsync(http, key, token: null, OperationParameters.None, cancellationToken);
        if ((problem ?? Problems.Invalid(errors, OperationParameters.None)) is { } invalid)
        {
            return invalid;
        }

        var info = await engine.InspectAsync(new LockName(http.TenantOf(), key));
        return info is null ? Problems.Free(key) : TypedResults.Ok(LockInfoResponse.From(info));
    }

    private static async Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LockEngine engine, IOptions<LockOptions> options, CancellationToken cancellationToken)
    {
        var limits = options.Value;
        var (parameters, problem, errors) = await ReadRequestAsync(http, key, token, OperationParameters.Watch, cancellationToken);
        if (parameters.WaitMs is long watchMs && errors is null)
        {
            LockRules.CheckWait(watchMs, limits, ref errors);
        }

        if ((problem ?? Problems.Invalid(errors, OperationParameters.Watch)) is { } invalid)
        {
            return invalid;
        }

        var name = new LockName(http.TenantOf(), key);
        var result = parameters.WaitMs is > 0
            ? await engine.WatchAsync(name, token, parameters.WaitMs.Value, cancellationToken)
            : await engine.CheckAsync(name, token);
        if (result.NoRoomToWatch)
        {
            http.Response.Headers.RetryAfter = "1";
            return Problems.TooManyWatchers(limits.MaxWatchers);
        }

        if (parameters.WaitMs is > 0 && result.Ended is { } lost)
        {
            LockMetrics.Lost(lost);
        }

        return result.Info is { } info ? TypedResults.Ok(LockInfoResponse.From(info)) : Problems.NotHeld(key, result.Ended!.Value);
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

    // Every lock request in the contract's order: 413/415 for the body, then 400 for the key and the token (as a
    // problem), then the parameters as read (as errors, to which the handler adds the engine's rules for the request
    // it builds from them, so that one 400 names everything wrong). Endpoints without parameters still answer a
    // typo'd query parameter, or a body that is not an empty JSON object, with a 400: bad input never releases a lock.
    private static async ValueTask<(LockParameters Parameters, ProblemHttpResult? Problem, RequestErrors? Errors)> ReadRequestAsync(
        HttpContext http, string key, string? token, OperationParameters operation, CancellationToken cancellationToken)
    {
        var (body, bodyProblem) = await LockParameterReader.ReadBodyAsync(http.Request, cancellationToken);
        if ((bodyProblem ?? TargetProblem(key, token)) is { } problem)
        {
            return (default, problem, null);
        }

        RequestErrors? errors = null;   // created by the first error only
        var parameters = LockParameterReader.Parse(http.Request.Query, body, operation, ref errors);
        if (operation.ReadsIdempotencyKey)
        {
            parameters = parameters with { IdempotencyKey = IdempotencyKeyOf(http.Request, ref errors) };
        }

        return (parameters, null, errors);
    }

    private static ProblemHttpResult? TargetProblem(string key, string? token)
    {
        if (!LockName.IsValid(key))
        {
            return Problems.BadKey(key);
        }

        return token is not null && !LockToken.IsValid(token) ? Problems.BadToken() : null;
    }

    private static string? IdempotencyKeyOf(HttpRequest request, ref RequestErrors? errors)
    {
        if (!request.Headers.TryGetValue(LockRules.IdempotencyKey, out var values))
        {
            return null;
        }

        if (values.Count != 1)
        {
            RequestErrors.Add(ref errors, LockRules.IdempotencyKey, $"The {LockRules.IdempotencyKey} header must be given once.");
            return null;
        }

        return LockRules.CheckIdempotencyKey(values[0] ?? string.Empty, ref errors) ? values[0] : null;
    }
}

/// <summary>Set on a request that waited in the server, so its duration also counts as a wait.</summary>
internal sealed class WaitedFeature
{
    public static readonly WaitedFeature Instance = new();
}
