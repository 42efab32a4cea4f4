using System.Text.Json;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Core.Elections;
using LockService.Core.Leases;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LockService.Api.Elections;

/// <summary>
/// The route table of elections and its handlers, which only translate between HTTP and the engine: a campaign is an
/// acquire of the election kind (<see cref="ElectionStore"/>) on the lease engine, with the lock routes' conventions
/// (parameters, streams, watches, reasons, 405 with Allow, 400 for paths no route takes); observing is
/// <see cref="ElectionObservers"/>'.
/// </summary>
internal static class ElectionEndpoints
{
    /// <summary>The election routes' noun and methods (for a 405's Allow).</summary>
    public static readonly LeaseRoutes Routes = new("election", [HttpMethods.Get, HttpMethods.Post], [HttpMethods.Delete, HttpMethods.Get, HttpMethods.Patch]);

    public static IEndpointRouteBuilder MapElectionEndpoints(this IEndpointRouteBuilder app)
    {
        var elections = Routes.MapGroup(app, "Elections");

        elections.MapPost("/{key}", CampaignAsync).WithName("campaign").WithOperation(LeaseKind.Election, LeaseOperation.Acquire)
            .WithSummary("Campaign: lead the election if nobody does, optionally waiting in the server; with Accept: text/event-stream, lead for the life of the stream")
            .WithDescription("201 with the leadership (its term is its fencing token, strictly increasing per name) when this candidate leads; 409 election_led with the current leader's term, value, acquiredAt and expiresAt "
                + "(member 'leader', never its token) and Retry-After when another leads and waitMs ran out; 429 when the instance has Locks:MaxWaiters waiting (a stream: Locks:MaxStreams open), or the tenant its share. "
                + "With Accept: text/event-stream (ttlMs >= 1000, no Idempotency-Key): 200 once it leads, 'event: acquired' (the leadership), a comment after every renewal and 'event: lost' with {\"reason\"}; closing the stream resigns, and a waiting candidate leads within milliseconds.")
            .WithParameters(OperationParameters.Campaign)
            .ProducesEvents(StatusCodes.Status200OK, ("acquired", typeof(CampaignResponse)), ("lost", typeof(LostEvent)))
            .ProducesProblem(StatusCodes.Status409Conflict).WithProblemCodes(StatusCodes.Status409Conflict, ElectionProblems.ElectionLed)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        elections.MapGet("/{key}", LeaderAsync).WithName("leader").WithOperation(LeaseKind.Election, LeaseOperation.Inspect)
            .WithSummary("Who leads (never the token); with Accept: text/event-stream, observe: the current state, then every change")
            .WithDescription("200 with the leader's term, value, acquiredAt, expiresAt and remaining TTL; 404 no_leader when nobody leads. "
                + "With Accept: text/event-stream: 200 and a stream whose first event is the current state ('event: leader' with the leader's body, or 'event: no-leader' with {\"name\"}), then one event per change of term, of value, or to no leader, made on any instance, within 100 ms. "
                + "Each event's id names the state it reports: a client that reconnects with Last-Event-ID gets the current state first only if it differs. Changes within a few ms may be reported as one, but the last event is always the current state. "
                + "A comment goes out at least every 15 s. 429 when the instance has Elections:MaxObservers observers open, or the tenant its share.")
            .ProducesEvents(StatusCodes.Status200OK, ("leader", typeof(LeaderResponse)), ("no-leader", typeof(NoLeaderEvent)))
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, ElectionProblems.NoLeader);
        elections.MapPatch("/{key}/{token}", ProclaimAsync).WithName("proclaim").WithOperation(LeaseKind.Election, LeaseOperation.Extend)
            .WithSummary("Proclaim and extend: set the leader's value (observers see it) and extend its term to ttlMs from now")
            .WithDescription("200 with the leadership: its remaining TTL is ttlMs from now (default: the TTL it campaigned with, cut to its hold cap), and its value the one given (unchanged without one; empty clears it). "
                + "404 not_leader with 'reason' (released, forced, expired, unknown) when this token does not lead: stop acting as the leader.")
            .WithParameters(OperationParameters.Proclaim)
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, ElectionProblems.NotLeader)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        elections.MapDelete("/{key}/{token}", ResignAsync).WithName("resign").WithOperation(LeaseKind.Election, LeaseOperation.Release)
            .WithSummary("Resign: this token stops leading; a waiting candidate leads within milliseconds")
            .WithDescription("204 when this token led: nobody leads now (observers see the next leader or no-leader at once). 404 not_leader with 'reason' when it does not lead; nothing changes then.")
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, ElectionProblems.NotLeader);
        elections.MapGet("/{key}/{token}", CheckAsync).WithName("check-leadership").WithOperation(LeaseKind.Election, LeaseOperation.Inspect)
            .WithSummary("Whether this token still leads; with waitMs, watch it: answered at once when its term ends")
            .WithDescription("200 with the leader's body while this token leads; 404 not_leader with 'reason' (released, forced, expired, unknown) when it does not. With waitMs the request waits in the server until the term ends (then 404 at once) or waitMs runs out (then 200); 429 when the instance has Locks:MaxWatchers watches open.")
            .WithParameters(OperationParameters.WatchLeadership)
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, ElectionProblems.NotLeader);

        elections.MapFallback("/{**rest}", (HttpContext http, CancellationToken cancellationToken, string? rest) =>
            LeaseRequests.NoRouteAsync(http, Routes, rest, cancellationToken)).WithName("elections-no-route").ExcludeFromDescription();
        return app;
    }

    // A campaign's request carries its value; another candidate leading is 409 election_led with that leader.
    private static readonly AcquireShape<CampaignRequest, ElectionLease, ElectionLeader?, CampaignResponse> Campaigning = new(
        OperationParameters.Campaign,
        static (parameters, terms) => new CampaignRequest(terms, parameters.Value ?? string.Empty),
        CampaignResponse.From,
        ElectionJsonContext.Default.CampaignResponse,
        LeaseOutcome.Held,
        static (key, _, result) => ElectionProblems.Led(key, result.Busy, result.RetryAfterMs));

    private static Task<Results<Created<CampaignResponse>, LeaseStream, ProblemHttpResult>> CampaignAsync(
        string key, HttpContext http, LeaseEngine engine, ElectionStore elections, CancellationToken cancellationToken) =>
        LeaseRequests.AcquireAsync(http, Routes, key, engine, elections, Campaigning, cancellationToken);

    private static async Task<Results<Ok<LeaderResponse>, ObserveStream, ProblemHttpResult>> LeaderAsync(
        string key, HttpContext http, ElectionStore elections, ElectionObservers observers, IOptions<ElectionOptions> options, CancellationToken cancellationToken)
    {
        if (await LeaseRequests.ReadNoneAsync(http, Routes, key, token: null, cancellationToken) is { } invalid)
        {
            return invalid;
        }

        var name = new LeaseName(http.TenantOf(), key);
        if (!LeaseStream.IsWanted(http.Request))
        {
            var leader = await elections.InspectAsync(name);
            http.Outcome(leader is null ? LeaseOutcome.NotHeld : LeaseOutcome.Held);
            return leader is null ? ElectionProblems.NoLeaderNow(key) : TypedResults.Ok(LeaderResponse.From(leader));
        }

        var lastEventId = http.Request.Headers["Last-Event-ID"].ToString();
        var observer = observers.TryObserve(name, lastEventId.Length == 0 ? null : lastEventId, out var refused);
        if (observer is null)
        {
            http.Outcome(LeaseOutcome.Rejected);
            http.Response.Headers.RetryAfter = "1";
            return ElectionProblems.TooManyObservers(refused, options.Value, elections.Limits);
        }

        try
        {
            // Everything that can go wrong before the stream (Redis unreachable) is an ordinary problem response.
            await observer.ReadyAsync(elections.Timeout, cancellationToken);
        }
        catch
        {
            observer.Dispose();
            throw;
        }

        http.Outcome(observer.Current?.Leader is null ? LeaseOutcome.NotHeld : LeaseOutcome.Held);
        return new ObserveStream(observer);
    }

    private static async Task<Results<Ok<CampaignResponse>, ProblemHttpResult>> ProclaimAsync(
        string key, string token, HttpContext http, ElectionStore elections, CancellationToken cancellationToken)
    {
        var (parameters, problem, errors) = await LeaseRequests.ReadAsync(http, Routes, key, token, OperationParameters.Proclaim, cancellationToken);
        var request = new ProclaimRequest(parameters.TtlMs, parameters.Value);
        if ((problem ?? Problems.Invalid(RequestErrors.Merge(errors, request.Validate(elections.Limits)), OperationParameters.Proclaim)) is { } invalid)
        {
            return invalid;
        }

        var result = await elections.ProclaimAsync(new LeaseName(http.TenantOf(), key), token, request);
        http.Outcome(result.Lease is null ? LeaseOutcome.NotHeld : LeaseOutcome.Extended);
        return result.Lease is { } lease ? TypedResults.Ok(CampaignResponse.From(lease)) : ElectionProblems.NotLeading(key, result.Ended!.Value);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ResignAsync(
        string key, string token, HttpContext http, ElectionStore elections, CancellationToken cancellationToken)
    {
        if (await LeaseRequests.ReadNoneAsync(http, Routes, key, token, cancellationToken) is { } invalid)
        {
            return invalid;
        }

        var result = await elections.ReleaseAsync(new LeaseName(http.TenantOf(), key), token);
        http.Outcome(result.Released ? LeaseOutcome.Released : LeaseOutcome.NotHeld);
        if (result.Released)
        {
            LockMetrics.TermDuration.Observe(result.HeldMs / 1000.0);
        }

        return result.Released ? TypedResults.NoContent() : ElectionProblems.NotLeading(key, result.Ended!.Value);
    }

    private static Task<Results<Ok<LeaderResponse>, ProblemHttpResult>> CheckAsync(
        string key, string token, HttpContext http, LeaseEngine engine, ElectionStore elections, CancellationToken cancellationToken) =>
        LeaseRequests.CheckAsync(
            http, Routes, (key, token), OperationParameters.WatchLeadership, engine, elections, LeaderResponse.From, ElectionProblems.NotLeading, cancellationToken);
}
