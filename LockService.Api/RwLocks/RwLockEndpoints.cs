using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Core.Leases;
using LockService.Core.RwLocks;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.RwLocks;

/// <summary>
/// The route table of the read/write lock API and its handlers, which only translate between HTTP and the engine. Same group
/// conventions as /locks (API keys, tenants, rate limit, 405 with Allow, 400 for paths no route takes), same parameter
/// reading (<see cref="LeaseRequests"/>), same streams (<see cref="LeaseStream"/>).
/// </summary>
internal static class RwLockEndpoints
{
    public static IEndpointRouteBuilder MapRwLockEndpoints(this IEndpointRouteBuilder app)
    {
        var rwlocks = LeaseRoutes.RwLocks.MapGroup(app, "Read/write locks");

        rwlocks.MapPost("/{key}", AcquireAsync).WithName("acquire-rwlock").WithOperation(LeaseKind.RwLock, LeaseOperation.Acquire)
            .WithSummary("Acquire a read lease (shared with other readers) or a write lease (alone), optionally waiting in the server; with Accept: text/event-stream, hold it for the life of the stream")
            .WithDescription("mode=read is granted while no writer holds the lock and none is waiting for it (waiting writers go first, so readers never starve a writer); mode=write while nobody holds it. "
                + "201 with the lease (its fencing token is above every earlier lease's of the key, either mode); 409 rwlock_held (with Retry-After, and a detail saying whether a writer holds it, readers hold it, or a writer waits) when waitMs ran out; "
                + "429 when the instance has Locks:MaxWaiters waiting (a stream: Locks:MaxStreams open), or the tenant its share of them. A writer counts as waiting only while its request waits: when it ends, the readers it held back are woken. "
                + "There is no upgrade: a reader that asks for write waits for every read lease, its own included. "
                + "With Accept: text/event-stream (ttlMs >= 1000, no Idempotency-Key): 200 once the lease is obtained, 'event: acquired' (the lease), a comment after every renewal and "
                + "'event: lost' with {\"reason\"}; closing the stream releases the lease.")
            .WithParameters(OperationParameters.AcquireRwLock)
            .ProducesEvents(StatusCodes.Status200OK, ("acquired", typeof(RwLeaseResponse)), ("lost", typeof(LostEvent)))
            .ProducesProblem(StatusCodes.Status409Conflict).WithProblemCodes(StatusCodes.Status409Conflict, Problems.RwLockHeld);
        rwlocks.MapDelete("/{key}/{token}", ReleaseAsync).WithName("release-rwlock").WithOperation(LeaseKind.RwLock, LeaseOperation.Release)
            .WithSummary("Release the read or write lease this token holds: a writer's release wakes the next writer or, with none waiting, every reader; the last reader's wakes a writer")
            .WithDescription("204 when this token held a lease of the key. 404 rwlock_not_held with 'reason' (released, forced, expired, unknown) when it holds none; nothing changes then.")
            .ProducesNotHeld(Problems.RwLockNotHeld);
        rwlocks.MapPatch("/{key}/{token}", ExtendAsync).WithName("extend-rwlock").WithOperation(LeaseKind.RwLock, LeaseOperation.Extend)
            .WithSummary("Extend the lease this token holds: its remaining TTL becomes ttlMs from now")
            .WithDescription("200 with the lease and its new expiry. Without ttlMs the TTL it was acquired with is used; a hold cap (maxHoldMs) cuts it. 404 rwlock_not_held with 'reason' when this token holds no lease: stop working under it.")
            .WithParameters(OperationParameters.ExtendRwLock)
            .ProducesNotHeld(Problems.RwLockNotHeld);
        rwlocks.MapGet("/{key}", InspectAsync).WithName("inspect-rwlock").WithOperation(LeaseKind.RwLock, LeaseOperation.Inspect)
            .WithSummary("Who holds a read/write lock, in which mode, and how many writers wait (never a token; at most 1000 holders, 'truncated' when there are more)")
            .WithDescription("200 with the mode held (read or write), each holder (mode, fencing token, owner, acquiredAt, expiry, remaining TTL, hold cap; those that expire first) and writersWaiting (writers whose waiting request is open on any instance); "
                + "404 rwlock_free when nobody holds it. Expired leases are never counted.")
            .ProducesNotHeld(Problems.RwLockFree);
        rwlocks.MapGet("/{key}/{token}", CheckAsync).WithName("check-rwlock").WithOperation(LeaseKind.RwLock, LeaseOperation.Inspect)
            .WithSummary("Whether this token still holds its lease; with waitMs, watch it: answered at once when the lease ends")
            .WithDescription("200 with the lease (its mode, never the token) while this token holds it; 404 rwlock_not_held with 'reason' (released, forced, expired, unknown) when it does not. With waitMs the request waits in the server until the lease ends (then 404 at once) or waitMs runs out (then 200); 429 when the instance has Locks:MaxWatchers watches open.")
            .WithParameters(OperationParameters.WatchRwLock)
            .ProducesNotHeld(Problems.RwLockNotHeld);

        // 413 and 415 are declared for every lease route by the OpenAPI filter. Whatever no route above takes is answered as
        // for /locks (405 with Allow, 400 for an empty or too deep path).
        rwlocks.MapFallback("/{**rest}", (HttpContext http, CancellationToken cancellationToken, string? rest) =>
            LeaseRequests.NoRouteAsync(http, LeaseRoutes.RwLocks, rest, cancellationToken)).WithName("rwlocks-no-route").ExcludeFromDescription();
        return app;
    }

    // A lease's request carries its mode; a lease in the way is 409 rwlock_held saying who holds it and who waits.
    private static readonly AcquireShape<RwLockRequest, RwLease, RwBusy, RwLeaseResponse> Acquiring = new(
        OperationParameters.AcquireRwLock,
        static (parameters, terms) => new RwLockRequest(terms, RwLockRequest.ModeOf(parameters.Mode)),
        RwLeaseResponse.From,
        RwLockJsonContext.Default.RwLeaseResponse,
        LeaseOutcome.Held,
        Held);

    private static Task<Results<Created<RwLeaseResponse>, LeaseStream, ProblemHttpResult>> AcquireAsync(
        string key, HttpContext http, LeaseEngine engine, RwLockStore rwlocks, CancellationToken cancellationToken) =>
        LeaseRequests.AcquireAsync(http, LeaseRoutes.RwLocks, key, engine, rwlocks, Acquiring, cancellationToken);

    // Who is in the way. A writer that waited counts itself among the writers waiting; the detail names the others.
    private static ProblemHttpResult Held(string key, RwLockRequest request, AcquireResult<RwLease, RwBusy> result)
    {
        var mode = request.Mode!.Value;
        var busy = result.Busy;
        var itself = mode == RwLockMode.Write && request.Terms.WaitMs > 0 && busy.WritersWaiting > 0 ? 1 : 0;
        return Problems.RwHeld(key, RwModes.Name(mode), busy with { WritersWaiting = busy.WritersWaiting - itself }, result.RetryAfterMs);
    }

    private static Task<Results<NoContent, ProblemHttpResult>> ReleaseAsync(
        string key, string token, HttpContext http, RwLockStore rwlocks, CancellationToken cancellationToken) =>
        LeaseRequests.ReleaseAsync(http, LeaseRoutes.RwLocks, (key, token), rwlocks, LockMetrics.RwLockHoldDuration, Problems.NotHeldRwLease, cancellationToken);

    private static Task<Results<Ok<RwLeaseResponse>, ProblemHttpResult>> ExtendAsync(
        string key, string token, HttpContext http, RwLockStore rwlocks, CancellationToken cancellationToken) =>
        LeaseRequests.ExtendAsync(http, LeaseRoutes.RwLocks, (key, token), OperationParameters.ExtendRwLock, rwlocks, RwLeaseResponse.From, Problems.NotHeldRwLease, cancellationToken);

    private static Task<Results<Ok<RwLockInfoResponse>, ProblemHttpResult>> InspectAsync(
        string key, HttpContext http, RwLockStore rwlocks, CancellationToken cancellationToken) =>
        LeaseRequests.InspectAsync(http, LeaseRoutes.RwLocks, key, rwlocks.InspectAsync, RwLockInfoResponse.From, Problems.RwFree, cancellationToken);

    private static Task<Results<Ok<RwLeaseInfoResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LeaseEngine engine, RwLockStore rwlocks, CancellationToken cancellationToken) =>
        LeaseRequests.CheckAsync(http, LeaseRoutes.RwLocks, (key, token), OperationParameters.WatchRwLock, engine, rwlocks, RwLeaseInfoResponse.From, Problems.NotHeldRwLease, cancellationToken);

    // A 404 with the one code this route gives.
    private static RouteHandlerBuilder ProducesNotHeld(this RouteHandlerBuilder builder, string code) =>
        builder.ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, code);
}
