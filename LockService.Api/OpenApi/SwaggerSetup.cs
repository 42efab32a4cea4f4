using System.Text.Json.Nodes;
using LockService.Api.Locks;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// Swagger UI at /swagger and the OpenAPI document at /swagger/v1/swagger.json, derived from the route table's
/// typed results and metadata (never written by hand). On by default everywhere; Swagger:Enabled=false hides both.
/// </summary>
internal static class SwaggerSetup
{
    public static IServiceCollection AddLockSwagger(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(options =>
        {
            options.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "LockService",
                Version = "v1",
                Description = "Distributed locks over HTTP, backed by Redis: acquire (optionally waiting in the server), release, extend, inspect. Errors are application/problem+json with a stable 'code'.",
            });
            options.AddSecurityDefinition("Bearer", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key from Auth:ApiKeys (only when keys are configured).",
            });
            options.OperationFilter<OperationParametersFilter>();
            options.SchemaFilter<ExampleFilter>();
            options.OperationFilter<ProblemCodesFilter>();
            options.AddSecurityRequirement(document => new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("Bearer", document)] = [] });
        });
        return services;
    }

    /// <summary>
    /// Documents the parameters an operation reads itself (strictly, through LockParameterReader, from the same
    /// <see cref="OperationParameters"/>): each as a query parameter, all together as an optional JSON body, and the
    /// Idempotency-Key header where it is read. The request pays for no model binding just to appear in the document,
    /// and Accepts() is not used: it would make routing reject requests without a JSON content type before the
    /// handler can answer them with the contract's own 415.
    /// </summary>
    public static RouteHandlerBuilder WithParameters(this RouteHandlerBuilder builder, OperationParameters parameters) =>
        builder.WithMetadata(parameters);

    public static WebApplication UseLockSwagger(this WebApplication app)
    {
        if (app.Configuration.GetValue("Swagger:Enabled", true))
        {
            // A branch, so lock requests do not pass through Swagger's path matching.
            app.UseWhen(
                http => http.Request.Path.StartsWithSegments("/swagger", StringComparison.OrdinalIgnoreCase),
                swagger => swagger
                    .UseSwagger()
                    .UseSwaggerUI(options => options.SwaggerEndpoint("/swagger/v1/swagger.json", "LockService v1")));
        }

        return app;
    }
}

/// <summary>
/// Writes an operation's <see cref="OperationParameters"/> into the document: each parameter as a query parameter,
/// all of them as the properties of an optional JSON body (no other members allowed), and the Idempotency-Key header.
/// Descriptions state the limits of the running configuration, from the same <see cref="LockOptions"/> the engine
/// enforces.
/// </summary>
internal sealed class OperationParametersFilter(IOptions<LockOptions> options) : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<OperationParameters>().FirstOrDefault() is not { } declared)
        {
            return;
        }

        var limits = options.Value;
        var properties = new Dictionary<string, IOpenApiSchema>(StringComparer.Ordinal);
        foreach (var parameter in declared.Parameters)
        {
            var description = parameter.Describe(limits);
            (operation.Parameters ??= []).Add(new OpenApiParameter
            {
                Name = parameter.Name,
                In = ParameterLocation.Query,
                Required = false,
                Description = description,
                Schema = SchemaOf(parameter, nullable: false),
            });
            var property = SchemaOf(parameter, nullable: true);
            property.Description = description;
            properties[parameter.Name] = property;
        }

        if (declared.ReadsIdempotencyKey)
        {
            operation.Parameters!.Add(new OpenApiParameter
            {
                Name = LockRules.IdempotencyKey,
                In = ParameterLocation.Header,
                Required = false,
                Description = $"Retry-safe acquire: a retry with the same key while the lock is held returns the same lease. 1-{LockRules.MaxIdempotencyKeyLength} printable ASCII characters.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = LockRules.MaxIdempotencyKeyLength },
            });
        }

        if (properties.Count == 0)
        {
            return;
        }

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = false,
            Description = "Optional: the same parameters as the query string, as a JSON object (each parameter in one place only).",
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["application/json"] = new OpenApiMediaType
                {
                    Schema = new OpenApiSchema { Type = JsonSchemaType.Object, Properties = properties, AdditionalPropertiesAllowed = false },
                },
            },
        };
    }

    private static OpenApiSchema SchemaOf(LockParameter parameter, bool nullable)
    {
        var type = parameter.Kind == ParameterKind.Text ? JsonSchemaType.String : JsonSchemaType.Integer;
        return new OpenApiSchema
        {
            Type = nullable ? type | JsonSchemaType.Null : type,
            Format = parameter.Kind == ParameterKind.Text ? null : "int64",
            MinLength = parameter.Kind == ParameterKind.Text ? 1 : null,
            MaxLength = parameter.Kind == ParameterKind.Text ? LockRules.MaxOwnerLength : null,
        };
    }
}

/// <summary>An example of each body the API sends or takes, shown by Swagger UI.</summary>
internal sealed class ExampleFilter : ISchemaFilter
{
    private static readonly Dictionary<Type, string> Examples = new()
    {
        [typeof(LeaseResponse)] = """{"key":"orders-42","token":"16d6b288d3740b2b5ea03dc7f735e33f","fencingToken":1796011211951810,"ttlMs":30000,"expiresAt":"2026-11-26T14:24:19.026+00:00","owner":"billing-cron"}""",
        [typeof(LockInfoResponse)] = """{"key":"orders-42","fencingToken":1796011211951810,"owner":"billing-cron","ttlMs":29827,"expiresAt":"2026-11-26T14:24:19.033+00:00"}""",
        [typeof(ProblemDetails)] = """{"type":"urn:lockservice:problem:lock_held","title":"The lock is held by someone else.","status":409,"detail":"Lock 'orders-42' is held; its holder's TTL runs out in 29912 ms.","code":"lock_held","retryAfterMs":29912}""",
        [typeof(HttpValidationProblemDetails)] = """{"type":"urn:lockservice:problem:invalid_parameter","title":"One or more parameters are invalid.","status":400,"detail":"See 'errors' for what is wrong with each parameter.","code":"invalid_parameter","errors":{"ttl":["Unknown parameter 'ttl': this endpoint takes 'ttlMs', 'waitMs', 'owner'."]}}""",
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema concrete && Examples.TryGetValue(context.Type, out var example))
        {
            concrete.Examples = [JsonNode.Parse(example)!];
        }
    }
}

/// <summary>Names the problem <c>code</c>s each error status can carry, so clients can branch on them.</summary>
internal sealed class ProblemCodesFilter : IOperationFilter
{
    private static readonly Dictionary<string, string> Codes = new()
    {
        ["400"] = "Bad input, nothing changed. code: invalid_key, invalid_token or invalid_parameter (with an 'errors' object keyed by parameter).",
        ["401"] = "code: unauthorized (API keys are configured and the request has none or a wrong one). Header WWW-Authenticate: Bearer.",
        ["404"] = "code: lock_not_held.",
        ["409"] = "code: lock_held, with retryAfterMs (the holder's remaining TTL) and a Retry-After header.",
        ["413"] = "code: payload_too_large (body over 4 KiB).",
        ["415"] = "code: unsupported_media_type (send JSON or use the query string).",
        ["429"] = "code: too_many_requests (rate limit, or Locks:MaxWaiters waiting already), with Retry-After.",
        ["503"] = "code: redis_unavailable, with Retry-After. Answered within Redis:TimeoutMs plus a second.",
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (var (status, response) in operation.Responses ?? [])
        {
            if (Codes.TryGetValue(status, out var description) && response is OpenApiResponse concrete)
            {
                concrete.Description = description;
            }
        }
    }
}
