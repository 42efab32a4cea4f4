using System.Text.Json;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.Semaphores;

/// <summary>
/// The route table of the semaphore API and its handlers, which only translate between HTTP and the engine. Same group
/// conventions as /locks (API keys, tenants, rate limit, 405 with Allow, 400 for paths no route takes), same parameter
/// reading (<see cref="LeaseRequests"/>), same streams (<see cref="LeaseStream"/>).
/// </summary>
internal static class SemaphoreEndpoints
{
    public static IEndpointRouteBuilder MapSemaphoreEndpoints(this IEndpointRouteBuilder app)
    {
        var semaphores = LeaseRoutes.Semaphores.MapGroup(app, "Semaphores");

        semaphores.MapPost("/{key}", AcquireAsync).WithName("acquire-permit").WithOperation(LeaseKind.Semaphore, LeaseOperation.Acquire)
            .WithSummary("Acquire a permit of a semaphore (up to 'limit' holders at once), optionally waiting in the server for a place; with Accept: text/event-stream, hold it for the life of the stream")
            .WithDescription("201 with the permit (its slot: the lowest free one below limit; its fencing token increases per slot); 409 semaphore_full (with Retry-After: when the earliest permit expires) "
                + "when at least 'limit' permits are held and waitMs ran out; 429 when the instance has Locks:MaxWaiters waiting (a stream: Locks:MaxStreams open), or the tenant its share of them (Locks:MaxWaitersPerTenant). A caller is let in while fewer than its own limit are held. "
                + "With Accept: text/event-stream (ttlMs >= 1000, no Idempotency-Key): 200 once the permit is obtained, 'event: acquired' (the permit), a comment after every renewal and "
                + "'event: lost' with {\"reason\"}; closing the stream releases the permit.")
            .WithParameters(OperationParameters.AcquirePermit)
            .ProducesEvents(StatusCodes.Status200OK, ("acquired", typeof(PermitResponse)), ("lost", typeof(LostEvent)))
            .ProducesProblem(StatusCodes.Status409Conflict).WithProblemCodes(StatusCodes.Status409Conflict, Problems.SemaphoreFull);
        semaphores.MapDelete("/{key}/{token}", ReleaseAsync).WithName("release-permit").WithOperation(LeaseKind.Semaphore, LeaseOperation.Release)
            .WithSummary("Release the permit this token holds: its place goes to a waiter at once")
            .WithDescription("204 when this token held a permit: its slot is free at once. 404 permit_not_held with 'reason' (released, forced, expired, unknown) when it holds none; nothing changes then.")
            .ProducesNotHeld(Problems.PermitNotHeld);
        semaphores.MapPatch("/{key}/{token}", ExtendAsync).WithName("extend-permit").WithOperation(LeaseKind.Semaphore, LeaseOperation.Extend)
            .WithSummary("Extend the permit this token holds: its remaining TTL becomes ttlMs from now")
            .WithDescription("200 with the permit and its new expiry. Without ttlMs the TTL it was acquired with is used; a hold cap (maxHoldMs) cuts it. 404 permit_not_held with 'reason' when this token holds no permit: stop working under it.")
            .WithParameters(OperationParameters.ExtendPermit)
            .ProducesNotHeld(Problems.PermitNotHeld);
        semaphores.MapGet("/{key}", InspectAsync).WithName("inspect-semaphore").WithOperation(LeaseKind.Semaphore, LeaseOperation.Inspect)
            .WithSummary("How many permits are held and who holds them (never a token; at most 1000 permits, 'truncated' when there are more)")
            .WithDescription("200 with the count held and each permit (slot, fencing token, limit, owner, acquiredAt, expiry, remaining TTL, hold cap), ordered by slot; 404 semaphore_empty when no permit is held. Expired permits are never counted.")
            .ProducesNotHeld(Problems.SemaphoreEmpty);
        semaphores.MapGet("/{key}/{token}", CheckAsync).WithName("check-permit").WithOperation(LeaseKind.Semaphore, LeaseOperation.Inspect)
            .WithSummary("Whether this token still holds a permit; with waitMs, watch it: answered at once when the permit ends")
            .WithDescription("200 with the permit while this token holds it; 404 permit_not_held with 'reason' (released, forced, expired, unknown) when it does not. With waitMs the request waits in the server until the permit ends (then 404 at once) or waitMs runs out (then 200); 429 when the instance has Locks:MaxWatchers watches open.")
            .WithParameters(OperationParameters.WatchPermit)
            .ProducesNotHeld(Problems.PermitNotHeld);

        // 413 and 415 are declared for every lease route by the OpenAPI filter (each reads a body if one is sent). Whatever
        // no route above takes is answered as for /locks (405 with Allow, 400 for an empty or too deep path).
        semaphores.MapFallback("/{**rest}", (HttpContext http, CancellationToken cancellationToken, string? rest) =>
            LeaseRequests.NoRouteAsync(http, LeaseRoutes.Semaphores, rest, cancellationToken)).WithName("semaphores-no-route").ExcludeFromDescription();
        return app;
    }

    // A permit's request carries the caller's limit; a full semaphore is 409 semaphore_full with the count held.
    private static readonly AcquireShape<PermitRequest, PermitLease, SemaphoreBusy, PermitResponse> Acquiring = new(
        OperationParameters.AcquirePermit,
        static (parameters, terms) => new PermitRequest(terms, parameters.Limit),
        PermitResponse.From,
        SemaphoreJsonContext.Default.PermitResponse,
        LeaseOutcome.Full,
        static (key, request, result) => Problems.Full(key, result.Busy.Held, (int)request.Limit!.Value, result.RetryAfterMs));

    private static Task<Results<Created<PermitResponse>, LeaseStream, ProblemHttpResult>> AcquireAsync(
        string key, HttpContext http, LeaseEngine engine, SemaphoreStore semaphores, CancellationToken cancellationToken) =>
        LeaseRequests.AcquireAsync(http, LeaseRoutes.Semaphores, key, engine, semaphores, Acquiring, cancellationToken);

    private static Task<Results<NoContent, ProblemHttpResult>> ReleaseAsync(
        string key, string token, HttpContext http, SemaphoreStore semaphores, CancellationToken cancellationToken) =>
        LeaseRequests.ReleaseAsync(http, LeaseRoutes.Semaphores, (key, token), semaphores, LockMetrics.PermitHoldDuration, Problems.NotHeldPermit, cancellationToken);

    private static Task<Results<Ok<PermitResponse>, ProblemHttpResult>> ExtendAsync(
        string key, string token, HttpContext http, SemaphoreStore semaphores, CancellationToken cancellationToken) =>
        LeaseRequests.ExtendAsync(http, LeaseRoutes.Semaphores, (key, token), OperationParameters.ExtendPermit, semaphores, PermitResponse.From, Problems.NotHeldPermit, cancellationToken);

    private static Task<Results<Ok<SemaphoreInfoResponse>, ProblemHttpResult>> InspectAsync(
        string key, HttpContext http, SemaphoreStore semaphores, CancellationToken cancellationToken) =>
        LeaseRequests.InspectAsync(http, LeaseRoutes.Semaphores, key, semaphores.InspectAsync, SemaphoreInfoResponse.From, Problems.Empty, cancellationToken);

    private static Task<Results<Ok<PermitInfoResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LeaseEngine engine, SemaphoreStore semaphores, CancellationToken cancellationToken) =>
        LeaseRequests.CheckAsync(http, LeaseRoutes.Semaphores, (key, token), OperationParameters.WatchPermit, engine, semaphores, PermitInfoResponse.From, Problems.NotHeldPermit, cancellationToken);

    // A 404 with the one code this route gives.
    private static RouteHandlerBuilder ProducesNotHeld(this RouteHandlerBuilder builder, string code) =>
        builder.ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, code);
}
