using LockService.Api.Admin;
using LockService.Api.Auth;
using LockService.Api.Elections;
using LockService.Api.Errors;
using LockService.Api.Locks;
using LockService.Api.Observability;
using LockService.Api.OpenApi;
using LockService.Api.RateLimiting;
using LockService.Api.Redis;
using LockService.Api.RwLocks;
using LockService.Api.Semaphores;

// The container's HEALTHCHECK: the runtime image has no curl, so the service probes itself.
if (args is ["--healthcheck", ..])
{
    return await Operations.ProbeAsync();
}

LockMetrics.ConfigureAdapters();            // runtime metrics only: ASP.NET's per-request meters cost CPU on every request
var builder = WebApplication.CreateBuilder(args);
builder.AddLockLogging();                   // Serilog: JSON outside Development, tokens never logged
builder.Services.AddLeaseEngine();          // one multiplexer, the lease engine and a store per kind, validated Redis/Locks/Semaphores options
builder.Services.AddLockErrors();           // one problem+json shape for every error
builder.AddLockAuth();                      // API keys, tenants and roles; nothing registered when none are configured
builder.Services.AddLockOperators();        // /admin: listing, force-release, the dashboard's settings
builder.Services.AddLockRateLimiting();     // optional token bucket per tenant or client address
builder.Services.AddLockSwagger();          // OpenAPI derived from the route table
builder.WebHost.ConfigureKestrel(o => o.AddServerHeader = false);   // no need to advertise the server
builder.Services.ConfigureHttpJsonOptions(o =>
{
    o.SerializerOptions.TypeInfoResolverChain.Insert(0, LockJsonContext.Default);
    o.SerializerOptions.TypeInfoResolverChain.Insert(0, SemaphoreJsonContext.Default);
    o.SerializerOptions.TypeInfoResolverChain.Insert(0, RwLockJsonContext.Default);
    o.SerializerOptions.TypeInfoResolverChain.Insert(0, ElectionJsonContext.Default);
});

try
{
    var app = builder.Build();
    app.UseLockRequests();                  // first: errors as problems, then metrics and the request line
    app.UseLockSwagger();
    app.UseLockAuth();                      // API keys, only when configured
    app.UseRateLimiter();                   // after authentication, so buckets are per tenant
    app.MapLockEndpoints();
    app.MapSemaphoreEndpoints();            // /semaphores: the same conventions as /locks
    app.MapRwLockEndpoints();               // /rwlocks: likewise
    app.MapElectionEndpoints();             // /elections: campaigns on the lease engine, and observers
    app.MapAdminEndpoints();                // under /admin, apart from /locks: admin keys only
    app.MapDashboard();                     // /ui, when Ui:Enabled
    app.MapOperations();                    // health, metrics, start-up warnings
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (Operations.IsInvalidConfiguration(ex))
{
    // A bad setting stops the service at start with one line that names it.
    return Operations.ReportInvalidConfiguration(ex);
}

/// <summary>The entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
