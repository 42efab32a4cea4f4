using System.Globalization;
using LockService.Api.Auth;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Api.RateLimiting;
using LockService.Api.Semaphores;
using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.RwLocks;
using LockService.Core.Semaphores;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LockService.Api.Admin;

/// <summary>
/// The route table of the operator endpoints and their handlers. They live under /admin, apart from /locks, so that no
/// typo in a lock request (an empty token, a trailing slash) can reach them.
/// </summary>
internal static partial class AdminEndpoints
{
    public static IServiceCollection AddLockOperators(this IServiceCollection services)
    {
        services.AddOptions<OperatorOptions>().BindConfiguration(OperatorOptions.SectionName).ValidateOnStart();
        services.AddOptions<UiOptions>().BindConfiguration(UiOptions.SectionName).ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        // One shared listing per kind: a force-release clears its kind's pages.
        services.AddListing<LockStore, LockInfo>();
        services.AddListing<SemaphoreStore, SemaphoreInfo>();
        services.AddListing<ElectionStore, ElectionLeader>();
        services.AddListing<RwLockStore, RwLockInfo>();
        services.AddSingleton<InstanceRates>();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, AdminJsonContext.Default));
        return services;
    }

    /// <summary>The cached listing of a kind's held leases (<see cref="ListingCache{TPage}"/>), through the engine.</summary>
    public static IServiceCollection AddListing<TStore, TState>(this IServiceCollection services)
        where TStore : class, IListedLeases<TState>
        where TState : class =>
        services.AddSingleton(sp =>
        {
            var (engine, store) = (sp.GetRequiredService<LeaseEngine>(), sp.GetRequiredService<TStore>());
            return new ListingCache<LeasePage<TState>>(
                (tenant, prefix, limit, cursor, cancellation) => engine.ListAsync(store, tenant, prefix, limit, cursor, cancellation), sp.GetRequiredService<TimeProvider>());
        });

    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin")
            .WithTags("Operators")
            .RequireOperatorAuthorization()
            .RequireOperatorRateLimit()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        admin.MapGet("/locks", ListAsync).WithName("list-locks").WithParameters(OperationParameters.List)
            .WithSummary("List the held locks of the caller's tenant, page by page (never their tokens)")
            .WithDescription("Follow 'cursor' until it is null. A page may hold fewer than 'limit' locks, even none, with a cursor; a lock held during the whole listing appears at least once, never twice within a page. A cursor that cannot be followed (another prefix, a failover, a reshard) is 400 with errors.cursor.")
            .ProducesValidationProblem();
        admin.MapDelete("/locks/{key}", ForceReleaseAsync).WithName("force-release")
            .WithSummary("Release a lock whoever holds it: its waiters get it, its holder hears reason 'forced'")
            .WithDescription("204 when the lock was held, 404 lock_not_held when it was free. Any query parameter is 400. Only the caller's tenant's lock; each force-release is logged as an audit event (never a token). With authentication off it is 403 unless Operators:AllowForceReleaseWithoutAuth is true.")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        admin.MapGet("/semaphores", ListSemaphoresAsync).WithName("list-semaphores").WithParameters(OperationParameters.List)
            .WithSummary("List the semaphores of the caller's tenant that have permits held, with their permits, page by page (never a token)")
            .WithDescription("As the listing of locks: follow 'cursor' until it is null; a page may hold fewer than 'limit' semaphores, even none, with a cursor; a semaphore with permits held during the whole listing appears at least once, never twice within a page.")
            .ProducesValidationProblem();
        admin.MapDelete("/semaphores/{key}/{slot}", ForceReleasePermitAsync).WithName("force-release-permit")
            .WithSummary("Release the permit in one slot of a semaphore, whoever holds it: a waiter gets the place, its holder hears reason 'forced'")
            .WithDescription("204 when the slot was held, 404 permit_not_held when it was free; a slot that is not 0 .. Semaphores:MaxLimit-1 is 400 with errors.slot. The other permits are untouched; each force-release is logged as an audit event (never a token). With authentication off it is 403 unless Operators:AllowForceReleaseWithoutAuth is true.")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound).WithProblemCodes(StatusCodes.Status404NotFound, Problems.PermitNotHeld);
        MapElectionAdmin(admin);
        MapRwLockAdmin(admin);
        admin.MapGet("/stats", Stats).WithName("instance-stats")
            .WithSummary("This instance's waiting requests, watches, and acquire and release rates (for the dashboard)")
            .WithDescription("The instance that answers, not the whole service: its waiting acquires and open watches now, and its rates of acquires, releases and force-releases over the last 10 s (sampled when asked, at most once a second; 0 on the first call).");
        return app;
    }

    private static Task<Results<Ok<LockListResponse>, ProblemHttpResult>> ListAsync(
        HttpContext http, ListingCache<LeasePage<LockInfo>> listings, CancellationToken cancellationToken) =>
        ListPageAsync(http, listings, page => new LockListResponse([.. page.Items.Select(LockInfoResponse.From)], page.Cursor), cancellationToken);

    private static Task<Results<Ok<SemaphoreListResponse>, ProblemHttpResult>> ListSemaphoresAsync(
        HttpContext http, ListingCache<LeasePage<SemaphoreInfo>> listings, CancellationToken cancellationToken) =>
        ListPageAsync(http, listings, page => new SemaphoreListResponse([.. page.Items.Select(SemaphoreInfoResponse.From)], page.Cursor), cancellationToken);

    /// <summary>
    /// A page of a listing of any kind: its parameters read as every lease request's are (each at most once, nothing
    /// else), then the page, or the 400 of a cursor that cannot be followed.
    /// </summary>
    public static async Task<Results<Ok<TResponse>, ProblemHttpResult>> ListPageAsync<TState, TResponse>(
        HttpContext http, ListingCache<LeasePage<TState>> listings, Func<LeasePage<TState>, TResponse> response, CancellationToken cancellationToken)
        where TState : class
    {
        RequestErrors? errors = null;
        var parameters = LeaseParameterReader.Parse(http.Request.Query, body: null, OperationParameters.List, ref errors);
        var limit = parameters.Limit ?? LeaseParameter.ListDefaultLimit;
        if (parameters.Limit is < 1 or > LeaseEngine.MaxListLimit)
        {
            RequestErrors.Add(ref errors, LeaseParameter.ListLimit.Name, $"'limit' must be between 1 and {LeaseEngine.MaxListLimit}; got {limit}.");
        }

        if (Problems.Invalid(errors, OperationParameters.List) is { } invalid)
        {
            return invalid;
        }

        var page = await listings.ListAsync(http.TenantOf(), parameters.Prefix ?? string.Empty, (int)limit, parameters.Cursor).WaitAsync(cancellationToken);
        return page.CursorError is { } why
            ? Problems.Invalid(new Dictionary<string, string[]>(StringComparer.Ordinal) { [LeaseParameter.ListCursor.Name] = [why] }, why)
            : TypedResults.Ok(response(page));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ForceReleaseAsync(
        string key,
        HttpContext http,
        LockStore locks,
        ListingCache<LeasePage<LockInfo>> listings,
        IOptions<OperatorOptions> options,
        ILogger<OperatorAudit> audit)
    {
        if (RefuseForce(http, options.Value, key, "lock") is { } refused)
        {
            return refused;
        }

        var tenant = http.TenantOf();
        var result = await locks.ForceReleaseAsync(new LeaseName(tenant, key));
        if (!result.Released)
        {
            return Problems.Free(key);
        }

        LockMetrics.ForcedReleases.Inc();
        LockMetrics.HoldDuration.Observe(result.HeldMs / 1000.0);
        listings.Clear();
        var shownTenant = ShownTenant(tenant);
        LogForceReleased(audit, key, shownTenant, result.FencingToken, result.Owner ?? "(none)", result.HeldMs, CallerRole(http), shownTenant);
        return TypedResults.NoContent();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ForceReleasePermitAsync(
        string key,
        string slot,
        HttpContext http,
        SemaphoreStore semaphoreStore,
        ListingCache<LeasePage<SemaphoreInfo>> listings,
        IOptions<OperatorOptions> options,
        IOptions<SemaphoreOptions> semaphores,
        ILogger<OperatorAudit> audit)
    {
        if (RefuseForce(http, options.Value, key, "semaphore") is { } refused)
        {
            return refused;
        }

        // A slot is below the largest limit there can be: digits only, so that no typo names another slot.
        var maxLimit = semaphores.Value.MaxLimit;
        if (slot.Length is 0 or > 9 || slot.AsSpan().ContainsAnyExceptInRange('0', '9')
            || !int.TryParse(slot, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number >= maxLimit)
        {
            return Problems.Invalid(
                new Dictionary<string, string[]>(StringComparer.Ordinal) { ["slot"] = [$"slot is a whole number from 0 to {maxLimit - 1} (Semaphores:MaxLimit - 1)."] },
                "See 'errors' for what is wrong with each parameter.");
        }

        var tenant = http.TenantOf();
        var result = await semaphoreStore.ForceReleaseAsync(new LeaseName(tenant, key), number);
        if (!result.Released)
        {
            return Problems.SlotFree(key, number);
        }

        LockMetrics.PermitForcedReleases.Inc();
        LockMetrics.PermitHoldDuration.Observe(result.HeldMs / 1000.0);
        listings.Clear();
        var shownTenant = ShownTenant(tenant);
        LogPermitForceReleased(audit, number, key, shownTenant, result.FencingToken, result.Owner ?? "(none)", result.Limit, result.HeldMs, CallerRole(http), shownTenant);
        return TypedResults.NoContent();
    }

    // With API keys the group's policy let only admin keys in. Without, nobody is known: force-release (which takes a lease
    // from its holder) stays off unless the operator said otherwise. A 403 comes before any 400; a typo'd parameter
    // (?dryRun=true) must not release anything.
    private static ProblemHttpResult? RefuseForce(HttpContext http, OperatorOptions options, string key, string noun, string? parameter = null)
    {
        if (http.RoleOf() is null && !options.AllowForceReleaseWithoutAuth)
        {
            return Problems.OperatorsOnly(
                "Force-release is off while authentication is off: configure an admin API key (Auth:ApiKeys:N:Role=admin), or set Operators:AllowForceReleaseWithoutAuth=true.");
        }

        if (http.Request.Query.Count > (parameter is not null && http.Request.Query.ContainsKey(parameter) ? 1 : 0))
        {
            var takes = parameter is null ? "none" : $"only '{parameter}'";
            var errors = http.Request.Query.Keys.Where(name => name != parameter)
                .ToDictionary(name => name, name => new[] { $"Unknown parameter '{name}': this endpoint takes {takes}." }, StringComparer.Ordinal);
            return Problems.Invalid(errors, parameter is null ? "This endpoint takes no parameters." : "See 'errors' for what is wrong with each parameter.");
        }

        return LeaseName.IsValid(key) ? null : Problems.BadKey(key, noun);
    }

    private static string ShownTenant(string tenant) => tenant.Length == 0 ? "(none)" : tenant;

    private static string CallerRole(HttpContext http) => http.RoleOf() ?? "none (authentication off)";

    private static Ok<InstanceStatsResponse> Stats(LeaseEngine engine, InstanceRates rates)
    {
        var (acquires, releases, forced, seconds) = rates.Now();
        var kinds = Enum.GetValues<LeaseKind>().ToDictionary(
            LeaseOperationMetadata.LabelOf,
            kind => new KindStatsResponse(engine.WaitingOf(kind), Math.Round(acquires[(int)kind], 2), Math.Round(releases[(int)kind], 2)));
        return TypedResults.Ok(new InstanceStatsResponse(
            engine.WaitingCount, engine.WatchingCount, Math.Round(acquires.Sum(), 2), Math.Round(releases.Sum(), 2), Math.Round(forced, 2), Math.Round(seconds, 1), kinds));
    }

    // Who released what, at Warning so that it stands out in the log: the key, its tenant, the holder's fencing token and
    // owner, and the role and tenant of the key that asked. Never a token (the script does not return it) nor key material.
    [LoggerMessage(EventId = 1200, EventName = "ForceReleased", Level = LogLevel.Warning,
        Message = "Audit: lock {LockKey} of tenant '{LockTenant}' force-released (fencing token {FencingToken}, owner {Owner}, held {HeldMs} ms) asked by an API key of tenant '{CallerTenant}' with role {CallerRole}")]
    private static partial void LogForceReleased(ILogger logger, string lockKey, string lockTenant, long fencingToken, string owner, long heldMs, string callerRole, string callerTenant);

    [LoggerMessage(EventId = 1201, EventName = "PermitForceReleased", Level = LogLevel.Warning,
        Message = "Audit: permit in slot {Slot} of semaphore {SemaphoreKey} of tenant '{SemaphoreTenant}' force-released (fencing token {FencingToken}, owner {Owner}, limit {Limit}, held {HeldMs} ms) asked by an API key of tenant '{CallerTenant}' with role {CallerRole}")]
    private static partial void LogPermitForceReleased(
        ILogger logger, int slot, string semaphoreKey, string semaphoreTenant, long fencingToken, string owner, int limit, long heldMs, string callerRole, string callerTenant);
}

/// <summary>The category of the operators' audit log events.</summary>
internal sealed class OperatorAudit;
