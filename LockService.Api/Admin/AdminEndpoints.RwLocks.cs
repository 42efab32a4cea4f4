using System.Globalization;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Api.RwLocks;
using LockService.Core.Leases;
using LockService.Core.RwLocks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace LockService.Api.Admin;

/// <summary>The operators' read/write lock routes: the same roles, auth-off rules, listing, audit and metrics as for locks.</summary>
internal static partial class AdminEndpoints
{
    // The one parameter of a read/write lock's force-release: which lease, when not all.
    private const string RwFencingToken = "fencingToken";

    private static void MapRwLockAdmin(RouteGroupBuilder admin)
    {
        admin.MapGet("/rwlocks", ListRwLocksAsync).WithName("list-rwlocks").WithParameters(OperationParameters.List)
            .WithSummary("List the held read/write locks of the caller's tenant, each with its holders and writers waiting, page by page (never a token)")
            .WithDescription("As the listing of locks: follow 'cursor' until it is null; a page may hold fewer than 'limit' read/write locks, even none, with a cursor; one held during the whole listing appears at least once, never twice within a page. Each is as GET /rwlocks/{key} shows it.")
            .ProducesValidationProblem();
        admin.MapDelete("/rwlocks/{key}", ForceReleaseRwLockAsync).WithName("force-release-rwlock")
            .WithSummary("Release every lease of a read/write lock, or with fencingToken=N the one lease that has it, whoever holds them: waiters get the place, holders hear reason 'forced'")
            .WithDescription("204 when a lease was released, 404 rwlock_not_held when nobody held it (or no lease has that fencing token). fencingToken is the only parameter (a positive whole number); anything else is 400. Each lease released is logged as an audit event (never a token). With authentication off it is 403 unless Operators:AllowForceReleaseWithoutAuth is true.")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, Problems.RwLockNotHeld);
    }

    private static Task<Results<Ok<RwLockListResponse>, ProblemHttpResult>> ListRwLocksAsync(
        HttpContext http, ListingCache<LeasePage<RwLockInfo>> listings, CancellationToken cancellationToken) =>
        ListPageAsync(http, listings, page => new RwLockListResponse([.. page.Items.Select(RwLockInfoResponse.From)], page.Cursor), cancellationToken);

    private static async Task<Results<NoContent, ProblemHttpResult>> ForceReleaseRwLockAsync(
        string key,
        HttpContext http,
        RwLockStore rwlocks,
        ListingCache<LeasePage<RwLockInfo>> listings,
        IOptions<OperatorOptions> options,
        ILogger<OperatorAudit> audit)
    {
        if (RefuseForce(http, options.Value, key, "rwlock", RwFencingToken) is { } refused)
        {
            return refused;
        }

        // The one lease to release, by its fencing token: digits only, positive and below 2^53, so that no typo names another.
        long? fencingToken = null;
        if (http.Request.Query.TryGetValue(RwFencingToken, out var given))
        {
            if (given.Count != 1 || given[0] is not { Length: > 0 and <= 16 } text || text.AsSpan().ContainsAnyExceptInRange('0', '9')
                || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var fence) || fence is < 1 or >= 1L << 53)
            {
                return Problems.Invalid(
                    new Dictionary<string, string[]>(StringComparer.Ordinal) { [RwFencingToken] = ["fencingToken is the fencing token of one lease, a whole number from 1 to 2^53 - 1, given once."] },
                    "See 'errors' for what is wrong with each parameter.");
            }

            fencingToken = fence;
        }

        var tenant = http.TenantOf();
        var released = await rwlocks.ForceReleaseAsync(new LeaseName(tenant, key), fencingToken);
        if (released.Count == 0)
        {
            return Problems.RwNothingToForce(key, fencingToken);
        }

        listings.Clear();
        var shownTenant = ShownTenant(tenant);
        foreach (var lease in released)
        {
            LockMetrics.RwLockForcedReleases.Inc();
            LockMetrics.RwLockHoldDuration.Observe(lease.HeldMs / 1000.0);
            LogRwLeaseForceReleased(audit, RwModes.Name(lease.Mode), key, shownTenant, lease.FencingToken, lease.Owner ?? "(none)", lease.HeldMs, CallerRole(http), shownTenant);
        }

        return TypedResults.NoContent();
    }

    [LoggerMessage(EventId = 1202, EventName = "RwLeaseForceReleased", Level = LogLevel.Warning,
        Message = "Audit: {Mode} lease of read/write lock {RwLockKey} of tenant '{RwLockTenant}' force-released (fencing token {FencingToken}, owner {Owner}, held {HeldMs} ms) asked by an API key of tenant '{CallerTenant}' with role {CallerRole}")]
    private static partial void LogRwLeaseForceReleased(
        ILogger logger, string mode, string rwLockKey, string rwLockTenant, long fencingToken, string owner, long heldMs, string callerRole, string callerTenant);
}
