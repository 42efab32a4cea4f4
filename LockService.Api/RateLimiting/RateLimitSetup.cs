using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Threading.RateLimiting;
using LockService.Api.Auth;
using LockService.Api.Errors;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace LockService.Api.RateLimiting;

/// <summary>
/// Optional per-tenant (or, with auth off, per-client-address) token bucket on the lease routes and the operator routes
/// (/admin): one bucket per caller for both, so that listings, which cost Redis the most per request, count like every
/// other request.
/// </summary>
internal sealed class RateLimitOptions
{
    public const string SectionName = "RateLimit";
    public const string PolicyName = "locks";

    /// <summary>Sustained requests per second; the bucket holds one second's worth for bursts. Empty: off.</summary>
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
            limiter.AddPolicy(RateLimitOptions.PolicyName, http =>
            {
                var permits = http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value.PermitsPerSecond ?? int.MaxValue;
                var tenant = http.TenantOf();
                var partition = tenant.Length > 0 ? "tenant:" + tenant : "address:" + http.Connection.RemoteIpAddress;
                return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = permits,
                    TokensPerPeriod = permits,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
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

    /// <summary>Applies the token bucket to the group when a rate is configured.</summary>
    public static RouteGroupBuilder RequireLockRateLimit(this RouteGroupBuilder group)
    {
        var options = ((IEndpointRouteBuilder)group).ServiceProvider.GetRequiredService<IOptions<RateLimitOptions>>().Value;
        return options.PermitsPerSecond is null ? group : group.RequireRateLimiting(RateLimitOptions.PolicyName);
    }
}
