using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Threading.RateLimiting;
using LockService.Api.Auth;
using LockService.Api.Errors;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace LockService.Api.RateLimiting;

/// <summary>
/// Optional per-tenant (or, with auth off, per-client-address) token buckets: one on the lease routes, and another of the
/// same size on the operator routes (/admin), so that listings, which cost Redis the most per request, are limited like
/// every other request, yet an open dashboard or a listing walk cannot use up the tenant's lock traffic, nor a busy lock
/// client lock its operators out of the dashboard.
/// </summary>
internal sealed class RateLimitOptions
{
    public const string SectionName = "RateLimit";
    public const string LeasePolicy = "locks", OperatorPolicy = "operators";

    /// <summary>Sustained requests per second of each bucket; a bucket holds one second's worth for bursts. Empty: off.</summary>
    [Range(1, 1_000_000, ErrorMessage = "RateLimit:PermitsPerSecond must be between 1 and 1000000 (or left empty to turn rate limiting off).")]
    public int? PermitsPerSecond { get; set; }
}

internal static class RateLimitSetup
{
    public static IServiceCollection AddLockRateLimiting(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(RateLimitOptions.LeasePolicy, http => Bucket(http, string.Empty));
            limiter.AddPolicy(RateLimitOptions.OperatorPolicy, http => Bucket(http, "admin:"));
            limiter.OnRejected = async (context, cancellationToken) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
                var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
                context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Problems.RateLimited().ExecuteAsync(context.HttpContext);
            };
        });
        return services;
    }

    /// <summary>Applies the lease routes' token bucket to the group when a rate is configured.</summary>
    public static RouteGroupBuilder RequireLockRateLimit(this RouteGroupBuilder group) => group.RequireRateLimit(RateLimitOptions.LeasePolicy);

    /// <summary>Applies the operator routes' token bucket (its own, per tenant) to the group when a rate is configured.</summary>
    public static RouteGroupBuilder RequireOperatorRateLimit(this RouteGroupBuilder group) => group.RequireRateLimit(RateLimitOptions.OperatorPolicy);

    private static RouteGroupBuilder RequireRateLimit(this RouteGroupBuilder group, string policy)
    {
        var options = ((IEndpointRouteBuilder)group).ServiceProvider.GetRequiredService<IOptions<RateLimitOptions>>().Value;
        return options.PermitsPerSecond is null ? group : group.RequireRateLimiting(policy);
    }

    // The caller's bucket among those of one policy (whose partitions all start with its prefix): per tenant, or per client
    // address with authentication off.
    private static RateLimitPartition<string> Bucket(HttpContext http, string policyPrefix)
    {
        var permits = http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value.PermitsPerSecond ?? int.MaxValue;
        var tenant = http.TenantOf();
        var partition = policyPrefix + (tenant.Length > 0 ? "tenant:" + tenant : "address:" + http.Connection.RemoteIpAddress);
        return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = permits,
            TokensPerPeriod = permits,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }
}
