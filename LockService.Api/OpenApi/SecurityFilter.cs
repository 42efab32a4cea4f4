using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Infrastructure;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// The security requirement follows the endpoint's own authorization metadata, so it follows the configuration: the
/// lock routes require authorization only when Auth:ApiKeys holds keys, and then (only then) the operation needs a
/// Bearer API key and can answer 401. Open endpoints and a service without keys carry no requirement, so generated
/// clients do not insist on a key the service does not want. Roles the endpoint requires (admin for operators) are
/// named in the description and in <c>x-required-roles</c>: OpenAPI 3.0 allows no scopes on an http scheme.
/// </summary>
internal sealed class SecurityFilter : IOperationFilter
{
    public const string SchemeId = "Bearer";
    public const string RolesExtension = "x-required-roles";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        if (metadata.OfType<IAllowAnonymous>().Any() || !metadata.OfType<IAuthorizeData>().Any() && !metadata.OfType<AuthorizationPolicy>().Any())
        {
            operation.Responses?.Remove("401");
            return;
        }

        (operation.Security ??= []).Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(SchemeId, context.Document)] = [] });
        var roles = metadata.OfType<IAuthorizeData>().SelectMany(a => (a.Roles ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .Concat(metadata.OfType<AuthorizationPolicy>().SelectMany(p => p.Requirements.OfType<RolesAuthorizationRequirement>()).SelectMany(r => r.AllowedRoles))
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        if (roles.Length > 0)
        {
            operation.Description = $"{operation.Description} Needs an API key with the role {string.Join(" or ", roles)}.".TrimStart();
            operation.Extensions ??= new Dictionary<string, IOpenApiExtension>();
            operation.Extensions[RolesExtension] = new JsonNodeExtension(new JsonArray([.. roles.Select(r => JsonValue.Create(r))]));
        }
    }
}
