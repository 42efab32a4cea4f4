using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using LockService.Api.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Features.Authentication;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace LockService.Api.Auth;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;api-key&gt;</c> against the configured keys. Keys are compared as
/// SHA-256 digests with a fixed-time comparison, so neither a key's content nor its length leaks through timing.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyDigests digests) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string TenantClaim = "tenant";


    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(HeaderNames.Authorization, out var values))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var header = values.Count == 1 ? values[0] : null;
        if (header is null || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("The Authorization header is not 'Bearer <api-key>'."));
        }

        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(header.AsSpan(7).Trim().ToString()));
        string? tenant = null;
        foreach (var (known, owner) in digests.Keys)
        {
            // Every configured key is compared, whichever matches, so the time taken does not tell which one did.
            if (CryptographicOperations.FixedTimeEquals(known, digest))
            {
                tenant = owner;
            }
        }

        if (tenant is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("Unknown API key."));
        }

        var identity = new ClaimsIdentity([new Claim(TenantClaim, tenant)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        var problem = Problems.Create(
            StatusCodes.Status401Unauthorized,
            Problems.Unauthorized,
            "An API key is required.",
            "Send 'Authorization: Bearer <api-key>' with a key configured in Auth:ApiKeys.");
        await problem.ExecuteAsync(Context);
    }
}

/// <summary>The configured keys' SHA-256 digests, computed once: the handler is created per request.</summary>
internal sealed class ApiKeyDigests(IOptions<AuthOptions> auth)
{
    public (byte[] Digest, string Tenant)[] Keys { get; } =
        [.. auth.Value.ApiKeys.Select(k => (SHA256.HashData(Encoding.UTF8.GetBytes(k.Key)), k.Tenant))];
}

/// <summary>Wires API keys, tenants and per-tenant rate limits into the pipeline.</summary>
internal static class AuthSetup
{
    public static IServiceCollection AddLockAuth(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ApiKeyDigests>();
        // ASP.NET Core would make a lone scheme the default, and so run the handler on every request. The API-key
        // scheme is the default only when keys are configured: with authentication off no handler runs at all.
        AppContext.SetSwitch("Microsoft.AspNetCore.Authentication.SuppressAutoDefaultScheme", true);
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddOptions<AuthenticationOptions>().Configure<IOptions<AuthOptions>>((options, auth) =>
        {
            if (auth.Value.Enabled)
            {
                options.DefaultScheme = ApiKeyAuthenticationHandler.SchemeName;
            }
        });
        services.AddAuthorization();
        return services;
    }

    /// <summary>
    /// Authentication and authorization middleware, only when keys are configured. With auth off they would run on
    /// every request for nothing; the two markers are the ones UseAuthentication and UseAuthorization set, which keep
    /// WebApplication from adding the middleware by itself.
    /// </summary>
    public static WebApplication UseLockAuth(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Enabled)
        {
            app.UseAuthentication();
            app.UseAuthorization();
        }
        else
        {
            ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
            ((IApplicationBuilder)app).Properties["__AuthorizationMiddlewareSet"] = true;
        }

        return app;
    }

    /// <summary>Requires an API key on the group when keys are configured; with none, the locks stay open.</summary>
    public static RouteGroupBuilder RequireLockAuthorization(this RouteGroupBuilder group)
    {
        var auth = ((IEndpointRouteBuilder)group).ServiceProvider.GetRequiredService<IOptions<AuthOptions>>().Value;
        return auth.Enabled ? group.RequireAuthorization() : group;
    }

    /// <summary>The caller's tenant, or the empty (default) tenant when authentication is off.</summary>
    /// <remarks>Reads the authentication feature, not HttpContext.User, whose getter builds an empty principal when nobody set one.</remarks>
    public static string TenantOf(this HttpContext http) =>
        http.Features.Get<IHttpAuthenticationFeature>()?.User?.FindFirst(ApiKeyAuthenticationHandler.TenantClaim)?.Value ?? string.Empty;
}
