using LockService.Api.Auth;
using LockService.Api.Elections;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Core.Elections;
using LockService.Core.Leases;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LockService.Api.Admin;

/// <summary>The operators' election routes: the same roles, auth-off rules, listing, audit and metrics as for locks.</summary>
internal static partial class AdminEndpoints
{
    private static void MapElectionAdmin(RouteGroupBuilder admin)
    {
        admin.MapGet("/elections", ListElectionsAsync).WithName("list-elections").WithParameters(OperationParameters.List)
            .WithSummary("List the elections of the caller's tenant that have a leader, page by page (never a token)")
            .WithDescription("Each as GET /elections/{name} shows it. As the listing of locks: follow 'cursor' until it is null; a page may hold fewer than 'limit' elections, even none, with a cursor; an election led during the whole listing appears at least once, never twice within a page.")
            .ProducesValidationProblem();
        admin.MapDelete("/elections/{key}", ForceElectionAsync).WithName("force-leader")
            .WithSummary("Force the leader of an election out, whoever it is: a waiting candidate leads, observers see it, the leader hears reason 'forced'")
            .WithDescription("204 when a leader was forced out, 404 no_leader when nobody led. Any query parameter is 400. Only the caller's tenant's election; each force is logged as an audit event (never a token). With authentication off it is 403 unless Operators:AllowForceReleaseWithoutAuth is true.")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, ElectionProblems.NoLeader);
    }

    private static Task<Results<Ok<ElectionListResponse>, ProblemHttpResult>> ListElectionsAsync(
        HttpContext http, ListingCache<LeasePage<ElectionLeader>> listings, CancellationToken cancellationToken) =>
        ListPageAsync(http, listings, page => new ElectionListResponse([.. page.Items.Select(LeaderResponse.From)], page.Cursor), cancellationToken);

    private static async Task<Results<NoContent, ProblemHttpResult>> ForceElectionAsync(
        string key,
        HttpContext http,
        ElectionStore elections,
        ListingCache<LeasePage<ElectionLeader>> listings,
        IOptions<OperatorOptions> options,
        ILogger<OperatorAudit> audit)
    {
        if (RefuseForce(http, options.Value, key, "election") is { } refused)
        {
            return refused;
        }

        var tenant = http.TenantOf();
        var result = await elections.ForceAsync(new LeaseName(tenant, key));
        if (!result.Forced)
        {
            return ElectionProblems.NoLeaderNow(key);
        }

        LockMetrics.ForcedLeaders.Inc();
        LockMetrics.TermDuration.Observe(result.HeldMs / 1000.0);
        listings.Clear();
        var shownTenant = ShownTenant(tenant);
        LogLeaderForced(audit, key, shownTenant, result.Term, result.HeldMs, CallerRole(http), shownTenant);
        return TypedResults.NoContent();
    }

    // Never the leader's value: it is the leader's own text (an address, a host name), not the operator's act.
    [LoggerMessage(EventId = 1210, EventName = "LeaderForced", Level = LogLevel.Warning,
        Message = "Audit: the leader of election {ElectionName} of tenant '{ElectionTenant}' forced out (term {Term}, led {HeldMs} ms) asked by an API key of tenant '{CallerTenant}' with role {CallerRole}")]
    private static partial void LogLeaderForced(ILogger logger, string electionName, string electionTenant, long term, long heldMs, string callerRole, string callerTenant);
}
