using System.Text.Json;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Api.RateLimiting;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace LockService.Api.Locks;

/// <summary>The route table of the lock API and its handlers, which only translate between HTTP and the engine.</summary>
internal static class LockEndpoints
{
    public static IEndpointRouteBuilder MapLockEndpoints(this IEndpointRouteBuilder app)
    {
        var locks = LeaseRoutes.Locks.MapGroup(app, "Locks");

        locks.MapPost("/{key}", AcquireAsync).WithName("acquire").WithOperation(LeaseKind.Lock, LeaseOperation.Acquire)
            .WithSummary("Acquire a lock, optionally waiting in the server for it; with Accept: text/event-stream, hold it for the life of the stream")
            .WithDescription("201 with the lease; 409 lock_held (with Retry-After) when held and waitMs ran out; 429 when the instance has Locks:MaxWaiters waiting (a stream: Locks:MaxStreams open), or the tenant its share of them (Locks:MaxWaitersPerTenant). "
                + "With Accept: text/event-stream (ttlMs >= 1000, no Idempotency-Key): 200 once the lock is obtained, a stream of 'event: acquired' (the lease), "
                + "a comment after every renewal (every ttlMs/3) and 'event: lost' with {\"reason\"} (forced, expired, released, unavailable); closing the stream releases the lock.")
            .WithParameters(OperationParameters.Acquire)
            .ProducesEvents(StatusCodes.Status200OK, ("acquired", typeof(LeaseResponse)), ("lost", typeof(LostEvent)))
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapDelete("/{key}/{token}", ReleaseAsync).WithName("release").WithOperation(LeaseKind.Lock, LeaseOperation.Release)
            .WithSummary("Release a lock held by this token")
            .WithDescription("204 when this token held the lock: it is free at once and a waiter (on any instance) gets it. 404 lock_not_held with 'reason' (released, forced, expired, unknown) when it does not hold it; nothing changes then.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapPatch("/{key}/{token}", ExtendAsync).WithName("extend").WithOperation(LeaseKind.Lock, LeaseOperation.Extend)
            .WithSummary("Extend a lock held by this token: its remaining TTL becomes ttlMs from now")
            .WithDescription("200 with the lease and its new expiry. Without ttlMs the TTL it was acquired with is used; a hold cap (maxHoldMs) cuts it, and a shorter TTL wakes the waiters to the new expiry. 404 lock_not_held with 'reason' when this token no longer holds the lock: stop working under it.")
            .WithParameters(OperationParameters.Extend)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        locks.MapGet("/{key}", InspectAsync).WithName("inspect").WithOperation(LeaseKind.Lock, LeaseOperation.Inspect)
            .WithSummary("Who holds a lock and for how long (never the token)")
            .WithDescription("200 with the holder's fencing token, owner, remaining TTL, expiry, acquiredAt and hold cap; 404 lock_not_held when the lock is free. Open to every caller of the tenant: the token is never shown.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        locks.MapGet("/{key}/{token}", CheckAsync).WithName("check").WithOperation(LeaseKind.Lock, LeaseOperation.Inspect)
            .WithSummary("Whether this token still holds the lock; with waitMs, watch it: answered at once when the lease ends")
            .WithDescription("200 with the lock while this token holds it; 404 lock_not_held with 'reason' (released, forced, expired, unknown) when it does not. With waitMs the request waits in the server until the lease ends (then 404 at once) or waitMs runs out (then 200); 429 when the instance has Locks:MaxWatchers watches open.")
            .WithParameters(OperationParameters.Watch)
            .ProducesProblem(StatusCodes.Status404NotFound);

        // Whatever no route above takes. Another method on a route's path is a 405 naming that route's methods; an empty
        // key (POST /locks/) or token, or a path deeper than any route (a key cannot hold '/'), is a bad key or token.
        locks.MapFallback("/{**rest}", NoRouteAsync).WithName("no-route").ExcludeFromDescription();
        return app;
    }

    // A lock's request is the lease terms alone; a lock held by others is 409 lock_held.
    private static readonly AcquireShape<AcquireRequest, LockLease, NoDetail, LeaseResponse> Acquiring = new(
        OperationParameters.Acquire,
        static (_, terms) => terms,
        LeaseResponse.From,
        LockJsonContext.Default.LeaseResponse,
        LeaseOutcome.Held,
        static (key, _, result) => Problems.Held(key, result.RetryAfterMs));

    private static Task<Results<Created<LeaseResponse>, LeaseStream, ProblemHttpResult>> AcquireAsync(
        string key, HttpContext http, LeaseEngine engine, LockStore locks, CancellationToken cancellationToken) =>
        LeaseRequests.AcquireAsync(http, LeaseRoutes.Locks, key, engine, locks, Acquiring, cancellationToken);

    private static Task<Results<NoContent, ProblemHttpResult>> ReleaseAsync(
        string key, string token, HttpContext http, LockStore locks, CancellationToken cancellationToken) =>
        LeaseRequests.ReleaseAsync(http, LeaseRoutes.Locks, (key, token), locks, LockMetrics.HoldDuration, Problems.NotHeld, cancellationToken);

    private static Task<Results<Ok<LeaseResponse>, ProblemHttpResult>> ExtendAsync(
        string key, string token, HttpContext http, LockStore locks, CancellationToken cancellationToken) =>
        LeaseRequests.ExtendAsync(http, LeaseRoutes.Locks, (key, token), OperationParameters.Extend, locks, LeaseResponse.From, Problems.NotHeld, cancellationToken);

    private static Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> InspectAsync(
        string key, HttpContext http, LockStore locks, CancellationToken cancellationToken) =>
        LeaseRequests.InspectAsync(http, LeaseRoutes.Locks, key, locks.InspectAsync, LockInfoResponse.From, Problems.Free, cancellationToken);

    private static Task<Results<Ok<LockInfoResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LeaseEngine engine, LockStore locks, CancellationToken cancellationToken) =>
        LeaseRequests.CheckAsync(http, LeaseRoutes.Locks, (key, token), OperationParameters.Watch, engine, locks, LockInfoResponse.From, Problems.NotHeld, cancellationToken);

    private static Task<ProblemHttpResult> NoRouteAsync(HttpContext http, CancellationToken cancellationToken, string? rest = null) =>
        LeaseRequests.NoRouteAsync(http, LeaseRoutes.Locks, rest, cancellationToken);
}

/// <summary>Set on a request that waited in the server, so its duration also counts as a wait.</summary>
internal sealed class WaitedFeature
{
    public static readonly WaitedFeature Instance = new();
}
