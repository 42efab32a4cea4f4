using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Observability;
using LockService.Api.RateLimiting;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.Locks;

/// <summary>
/// The routes of one kind of lease (<c>/locks</c>, <c>/semaphores</c>): what its keys are called in problems, and the
/// methods mapped on <c>/{key}</c> and on <c>/{key}/{token}</c>, for the Allow header of a 405.
/// </summary>
internal sealed record LeaseRoutes(string Noun, string[] KeyRouteMethods, string[] TokenRouteMethods)
{
    public static readonly LeaseRoutes Locks = new("lock", [HttpMethods.Get, HttpMethods.Post], [HttpMethods.Delete, HttpMethods.Get, HttpMethods.Patch]);
    public static readonly LeaseRoutes Semaphores = new("semaphore", [HttpMethods.Get, HttpMethods.Post], [HttpMethods.Delete, HttpMethods.Get, HttpMethods.Patch]);
    public static readonly LeaseRoutes RwLocks = new("rwlock", [HttpMethods.Get, HttpMethods.Post], [HttpMethods.Delete, HttpMethods.Get, HttpMethods.Patch]);

    /// <summary>
    /// The group of these routes under <c>/{noun}s</c>, with what every lease route has: API keys when configured, the rate
    /// limit, and the problems any of them can answer (400, 401, 429, 503).
    /// </summary>
    public RouteGroupBuilder MapGroup(IEndpointRouteBuilder app, string tag) => app.MapGroup($"/{Noun}s")
        .WithTags(tag)
        .RequireLockAuthorization()
        .RequireLockRateLimit()
        .ProducesValidationProblem()
        .ProducesProblem(StatusCodes.Status401Unauthorized)
        .ProducesProblem(StatusCodes.Status429TooManyRequests)
        .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
}

/// <summary>Reads a lease request (lock or semaphore) in the contract's order, and answers the paths no route takes.</summary>
internal static class LeaseRequests
{
    /// <summary>
    /// Every lease request in the contract's order: 413/415 for the body, then 400 for the key and the token (as a
    /// problem), then the parameters as read (as errors, to which the handler adds the engine's rules for the request it
    /// builds from them, so that one 400 names everything wrong). Endpoints without parameters still answer a typo'd query
    /// parameter, or a body that is not an empty JSON object, with a 400: bad input never releases anything.
    /// </summary>
    public static async ValueTask<(LeaseParameters Parameters, ProblemHttpResult? Problem, RequestErrors? Errors)> ReadAsync(
        HttpContext http, LeaseRoutes routes, string key, string? token, OperationParameters operation, CancellationToken cancellationToken)
    {
        var (body, bodyProblem) = await LeaseParameterReader.ReadBodyAsync(http.Request, cancellationToken);
        if ((bodyProblem ?? TargetProblem(routes, key, token)) is { } problem)
        {
            return (default, problem, null);
        }

        RequestErrors? errors = null;   // created by the first error only
        var parameters = LeaseParameterReader.Parse(http.Request.Query, body, operation, ref errors);
        if (operation.ReadsIdempotencyKey)
        {
            parameters = parameters with { IdempotencyKey = IdempotencyKeyOf(http.Request, ref errors) };
        }

        return (parameters, null, errors);
    }

    /// <summary>A request that takes no parameters (release, inspect): what is wrong with it, or null.</summary>
    public static async ValueTask<ProblemHttpResult?> ReadNoneAsync(HttpContext http, LeaseRoutes routes, string key, string? token, CancellationToken cancellationToken)
    {
        var (_, problem, errors) = await ReadAsync(http, routes, key, token, OperationParameters.None, cancellationToken);
        return problem ?? Problems.Invalid(errors, OperationParameters.None);
    }

    /// <summary>
    /// An acquire of any kind of lease, as the contract orders it: the request read and checked (the kind's rules with the
    /// parameters' errors, so one 400 names everything), a place among the instance's streams when the client asks for a
    /// stream, then the engine's acquire; 201 with the lease (or the stream holding it), 429 when there was no room to wait,
    /// or the kind's answer to a lease held by others.
    /// </summary>
    public static async Task<Results<Created<TBody>, LeaseStream, ProblemHttpResult>> AcquireAsync<TRequest, TLease, TInfo, TBusy, TBody>(
        HttpContext http,
        LeaseRoutes routes,
        string key,
        LeaseEngine engine,
        LeaseStore<TRequest, TLease, TInfo, TBusy> store,
        AcquireShape<TRequest, TLease, TBusy, TBody> shape,
        CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var limits = engine.Limits;
        var (parameters, problem, errors) = await ReadAsync(http, routes, key, token: null, shape.Parameters, cancellationToken);
        var stream = LeaseStream.IsWanted(http.Request);
        var request = shape.Request(parameters, parameters.Terms(limits));
        if ((problem ?? Problems.Invalid(RequestErrors.Merge(errors, store.Validate(request, stream)), shape.Parameters)) is { } invalid)
        {
            return invalid;
        }

        var name = new LeaseName(http.TenantOf(), key);
        var (place, noRoom) = stream ? StreamPlace.Reserve(http, name.Tenant, limits) : default;
        if (noRoom is not null)
        {
            return noRoom;
        }

        using var reserved = place;
        var result = await engine.AcquireAsync(store, name, request, cancellationToken);
        if (result.Waited)
        {
            http.Features.Set(WaitedFeature.Instance);
        }

        http.Outcome(result.Status switch
        {
            AcquireStatus.Acquired => LeaseOutcome.Acquired,
            AcquireStatus.Held => shape.Taken,
            _ => LeaseOutcome.Rejected,
        });
        switch (result.Status)
        {
            case AcquireStatus.Acquired when stream:
                var held = result.Lease!;
                return LeaseStream.For(engine, store, name, held, JsonSerializer.Serialize(shape.Body(held), shape.Json), reserved!.Take());
            case AcquireStatus.Acquired:
                var lease = result.Lease!;
                return TypedResults.Created($"/{routes.Noun}s/{key}/{lease.Token}", shape.Body(lease));
            case AcquireStatus.TooManyWaiters or AcquireStatus.TenantTooManyWaiters:
                http.Response.Headers.RetryAfter = "1";
                return Problems.TooManyWaiters(result.WaitRefused, limits);
            default:
                http.Response.Headers.RetryAfter = Problems.RetryAfterSeconds(result.RetryAfterMs);
                return shape.TakenProblem(key, request, result);
        }
    }

    /// <summary>A release of any kind of lease by its token: 204 (its hold time observed), or why the token holds nothing.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> ReleaseAsync<TRequest, TLease, TInfo, TBusy>(
        HttpContext http,
        LeaseRoutes routes,
        (string Key, string Token) target,
        LeaseStore<TRequest, TLease, TInfo, TBusy> store,
        Prometheus.Histogram holds,
        Func<string, LeaseEnd, ProblemHttpResult> notHeld,
        CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        if (await ReadNoneAsync(http, routes, target.Key, target.Token, cancellationToken) is { } invalid)
        {
            return invalid;
        }

        var result = await store.ReleaseAsync(new LeaseName(http.TenantOf(), target.Key), target.Token);
        http.Outcome(result.Released ? LeaseOutcome.Released : LeaseOutcome.NotHeld);
        if (!result.Released)
        {
            return notHeld(target.Key, result.Ended!.Value);
        }

        holds.Observe(result.HeldMs / 1000.0);
        return TypedResults.NoContent();
    }

    /// <summary>An inspection of any kind's name: 200 with what is held (never a token), or the kind's "nothing held".</summary>
    public static async Task<Results<Ok<TBody>, ProblemHttpResult>> InspectAsync<TState, TBody>(
        HttpContext http,
        LeaseRoutes routes,
        string key,
        Func<LeaseName, Task<TState?>> inspect,
        Func<TState, TBody> body,
        Func<string, ProblemHttpResult> free,
        CancellationToken cancellationToken)
        where TState : class
    {
        if (await ReadNoneAsync(http, routes, key, token: null, cancellationToken) is { } invalid)
        {
            return invalid;
        }

        var state = await inspect(new LeaseName(http.TenantOf(), key));
        http.Outcome(state is null ? LeaseOutcome.NotHeld : LeaseOutcome.Held);
        return state is null ? free(key) : TypedResults.Ok(body(state));
    }

    /// <summary>
    /// An extend of any kind of lease: its TTL read and checked against the rules, then the store's extend, then the
    /// lease with its new TTL, or why the token no longer holds it.
    /// </summary>
    public static async Task<Results<Ok<TBody>, ProblemHttpResult>> ExtendAsync<TRequest, TLease, TInfo, TBusy, TBody>(
        HttpContext http,
        LeaseRoutes routes,
        (string Key, string Token) target,
        OperationParameters operation,
        LeaseStore<TRequest, TLease, TInfo, TBusy> store,
        Func<TLease, TBody> body,
        Func<string, LeaseEnd, ProblemHttpResult> notHeld,
        CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var (parameters, problem, errors) = await ReadAsync(http, routes, target.Key, target.Token, operation, cancellationToken);
        var request = new ExtendRequest(parameters.TtlMs);
        if ((problem ?? Problems.Invalid(RequestErrors.Merge(errors, request.Validate(store.Limits)), operation)) is { } invalid)
        {
            return invalid;
        }

        var result = await store.ExtendAsync(new LeaseName(http.TenantOf(), target.Key), target.Token, request);
        http.Outcome(result.Lease is null ? LeaseOutcome.NotHeld : LeaseOutcome.Extended);
        return result.Lease is { } lease ? TypedResults.Ok(body(lease)) : notHeld(target.Key, result.Ended!.Value);
    }

    /// <summary>
    /// A check of any kind of lease, or with <c>waitMs</c> a watch:
    /// the lease while the token holds it, else why not; 429 when the instance has no room for another watch. A lease a
    /// watch saw end other than by its holder's release is counted as lost.
    /// </summary>
    public static async Task<Results<Ok<TBody>, ProblemHttpResult>> CheckAsync<TRequest, TLease, TInfo, TBusy, TBody>(
        HttpContext http,
        LeaseRoutes routes,
        (string Key, string Token) target,
        OperationParameters operation,
        LeaseEngine engine,
        LeaseStore<TRequest, TLease, TInfo, TBusy> store,
        Func<TInfo, TBody> body,
        Func<string, LeaseEnd, ProblemHttpResult> notHeld,
        CancellationToken cancellationToken)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        var limits = engine.Limits;
        var (parameters, problem, errors) = await ReadAsync(http, routes, target.Key, target.Token, operation, cancellationToken);
        var watchMs = parameters.WaitMs ?? 0;
        if (problem is null && errors is null)
        {
            LeaseRules.CheckWait(watchMs, limits, ref errors);
        }

        if ((problem ?? Problems.Invalid(errors, operation)) is { } invalid)
        {
            return invalid;
        }

        var name = new LeaseName(http.TenantOf(), target.Key);
        var result = watchMs > 0
            ? await engine.WatchAsync(store, name, target.Token, watchMs, cancellationToken)
            : await store.CheckAsync(name, target.Token);
        http.Outcome(result.NoRoomToWatch != NoRoom.None ? LeaseOutcome.Rejected : result.Info is null ? LeaseOutcome.NotHeld : LeaseOutcome.Held);
        if (result.NoRoomToWatch != NoRoom.None)
        {
            http.Response.Headers.RetryAfter = "1";
            return Problems.TooManyWatchers(result.NoRoomToWatch, limits);
        }

        if (watchMs > 0 && result.Ended is { } lost)
        {
            LockMetrics.Lost(lost);
        }

        return result.Info is { } info ? TypedResults.Ok(body(info)) : notHeld(target.Key, result.Ended!.Value);
    }

    /// <summary>
    /// Whatever no route of the group takes. The path's shape says which route it was meant for: one part is /{key}, two
    /// are /{key}/{token} (either part may be empty, which no route takes), more are no route at all. Another method on a
    /// route's path is a 405 naming that route's methods; an empty key or token, or a path deeper than any route (a key
    /// cannot hold '/'), is a bad key or token. A trailing slash does not count, as routing does not count it for the
    /// routes themselves (POST /locks/k/ acquires k).
    /// </summary>
    public static async Task<ProblemHttpResult> NoRouteAsync(HttpContext http, LeaseRoutes routes, string? rest, CancellationToken cancellationToken)
    {
        var path = rest is [.. var trimmed, '/'] ? trimmed : rest ?? string.Empty;
        var slash = path.IndexOf('/');
        var routeMethods = slash < 0 ? routes.KeyRouteMethods : path.IndexOf('/', slash + 1) < 0 ? routes.TokenRouteMethods : null;
        var method = http.Request.Method;
        if (routeMethods is not null && !routeMethods.Contains(method, StringComparer.OrdinalIgnoreCase))
        {
            // 405 comes before the body's 413/415 in the contract's order, so the body is not read.
            http.Response.Headers.Allow = string.Join(", ", routeMethods);
            return Problems.WrongMethod(method);
        }

        var (_, bodyProblem) = await LeaseParameterReader.ReadBodyAsync(http.Request, cancellationToken);
        return bodyProblem
            ?? (routeMethods == routes.TokenRouteMethods ? TargetProblem(routes, path[..slash], path[(slash + 1)..]) : null)
            ?? Problems.BadKey(path, routes.Noun);
    }

    private static ProblemHttpResult? TargetProblem(LeaseRoutes routes, string key, string? token)
    {
        if (!LeaseName.IsValid(key))
        {
            return Problems.BadKey(key, routes.Noun);
        }

        return token is not null && !LeaseToken.IsValid(token) ? Problems.BadToken() : null;
    }

    private static string? IdempotencyKeyOf(HttpRequest request, ref RequestErrors? errors)
    {
        if (!request.Headers.TryGetValue(LeaseRules.IdempotencyKey, out var values))
        {
            return null;
        }

        if (values.Count != 1)
        {
            RequestErrors.Add(ref errors, LeaseRules.IdempotencyKey, $"The {LeaseRules.IdempotencyKey} header must be given once.");
            return null;
        }

        return LeaseRules.CheckIdempotencyKey(values[0] ?? string.Empty, ref errors) ? values[0] : null;
    }
}

/// <summary>What a kind's acquire route adds to the shared handler (<see cref="LeaseRequests.AcquireAsync"/>).</summary>
/// <param name="Parameters">The parameters it reads.</param>
/// <param name="Request">The kind's typed request from the parameters and the lease terms read from them.</param>
/// <param name="Body">The 201's body (and a stream's first event) for a granted lease.</param>
/// <param name="Json">How that body is written into a stream's event.</param>
/// <param name="Taken">The outcome metrics count for a lease held by others (held, full).</param>
/// <param name="TakenProblem">The kind's 409 for a lease held by others when the wait ran out.</param>
internal sealed record AcquireShape<TRequest, TLease, TBusy, TBody>(
    OperationParameters Parameters,
    Func<LeaseParameters, AcquireRequest, TRequest> Request,
    Func<TLease, TBody> Body,
    JsonTypeInfo<TBody> Json,
    LeaseOutcome Taken,
    Func<string, TRequest, AcquireResult<TLease, TBusy>, ProblemHttpResult> TakenProblem)
    where TLease : class, IKeptLease;
