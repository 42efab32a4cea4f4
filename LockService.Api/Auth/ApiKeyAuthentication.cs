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
        ApiKeyDigest? match = null;
        foreach (var known in digests.Keys)
        {
            // Every configured key is compared, whichever matches, so the time taken does not tell which one did.
            if (CryptographicOperations.FixedTimeEquals(known.Digest, digest))
            {
                match = known;
            }
        }

        if (match is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("Unknown API key."));
        }

        var identity = new ClaimsIdentity([new Claim(TenantClaim, match.Tenant), new Claim(ClaimTypes.Role, match.Role)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        await Problems.ApiKeyRequired().ExecuteAsync(Context);
    }

    // A valid key whose role may not use the endpoint (a client key on /admin).
    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        await Problems.OperatorsOnly(
            $"Operator endpoints need an API key whose role is '{ApiKeyRoles.Admin}' (Auth:ApiKeys:N:Role); this key's role is '{ApiKeyRoles.Client}'.")
            .ExecuteAsync(Context);
}

/// <summary>One configured key's SHA-256 digest, with its tenant and role.</summary>
internal sealed record ApiKeyDigest(byte[] Digest, string Tenant, string Role);

/// <summary>The configured keys' SHA-256 digests, computed once: the handler is created per request.</summary>
internal sealed class ApiKeyDigests(IOptions<AuthOptions> auth)
{
    public ApiKeyDigest[] Keys { get; } =
        [.. auth.Value.ApiKeys.Select(k => new ApiKeyDigest(SHA256.HashData(Encoding.UTF8.GetBytes(k.Key)), k.Tenant, k.Role))];
}

/// <summary>Wires API keys, tenants and roles into the pipeline, and nothing at all when no keys are configured.</summary>
internal static class AuthSetup
{
    /// <summary>
    /// API keys, tenants and roles. Authentication and authorization are registered only when keys are configured:
    /// without their services WebApplication adds neither middleware by itself, so with authentication off no handler
    /// runs on any request. The decision reads the configuration as it stands when services are registered, which
    /// holds every source the service is given (appsettings, environment, command line).
    /// </summary>
    public static WebApplicationBuilder AddLockAuth(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        if (builder.Configuration.GetSection(AuthOptions.SectionName).Get<AuthOptions>() is not { Enabled: true })
        {
            return builder;
        }

        services.AddSingleton<ApiKeyDigests>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorization();
        return builder;
    }

    /// <summary>True when API keys are configured (and so authentication is registered).</summary>
    public static bool LockAuthEnabled(this IServiceProvider services) => services.GetService<ApiKeyDigests>() is not null;

    /// <summary>Authentication and authorization middleware, when keys are configured; else nothing was registered to add.</summary>
    public static WebApplication UseLockAuth(this WebApplication app)
    {
        if (app.Services.LockAuthEnabled())
        {
            app.UseAuthentication();
            app.UseAuthorization();
        }

        return app;
    }

    /// <summary>Requires an API key on the group when keys are configured; with none, the locks stay open.</summary>
    public static RouteGroupBuilder RequireLockAuthorization(this RouteGroupBuilder group) =>
        ((IEndpointRouteBuilder)group).ServiceProvider.LockAuthEnabled() ? group.RequireAuthorization() : group;

    /// <summary>
    /// Requires an admin API key on the group when keys are configured (403 for a client key). The role is named in
    /// the endpoint's metadata (not hidden behind a policy name), so the OpenAPI document can say it.
    /// </summary>
    public static RouteGroupBuilder RequireOperatorAuthorization(this RouteGroupBuilder group) =>
        ((IEndpointRouteBuilder)group).ServiceProvider.LockAuthEnabled()
            ? group.RequireAuthorization(new Microsoft.AspNetCore.Authorization.AuthorizeAttribute { Roles = ApiKeyRoles.Admin })
            : group;

    /// <summary>The caller's tenant, or the empty (default) tenant when authentication is off.</summary>
    /// <remarks>Reads the authentication feature, not HttpContext.User, whose getter builds an empty principal when nobody set one.</remarks>
    public static string TenantOf(this HttpContext http) =>
        http.Features.Get<IHttpAuthenticationFeature>()?.User?.FindFirst(ApiKeyAuthenticationHandler.TenantClaim)?.Value ?? string.Empty;

    /// <summary>The caller's API key role, or null when authentication is off.</summary>
    public static string? RoleOf(this HttpContext http) =>
        http.Features.Get<IHttpAuthenticationFeature>()?.User?.FindFirst(ClaimTypes.Role)?.Value;
}
