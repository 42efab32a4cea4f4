using System.Text.Json.Nodes;
using LockService.Api.Locks;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;
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
            options.AddSecurityDefinition(SecurityFilter.SchemeId, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key from Auth:ApiKeys. Operations name it only when keys are configured.",
            });
            options.SupportNonNullableReferenceTypes();
            options.OperationFilter<OperationParametersFilter>();
            options.SchemaFilter<ExampleFilter>();
            options.SchemaFilter<ResponseMembersRequiredFilter>();
            options.OperationFilter<ProblemResponsesFilter>();
            options.OperationFilter<SecurityFilter>();
            options.OperationFilter<EventStreamFilter>();
            options.DocumentFilter<OperationsDocumentFilter>();
            options.DocumentFilter<UnusedProblemSchemasFilter>();
            options.DocumentFilter<DocumentTags>();
        });
        return services;
    }

    /// <summary>
    /// Documents the parameters an operation reads itself (strictly, through LeaseParameterReader, from the same
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
/// Descriptions state the limits of the running configuration, from the same <see cref="LeaseOptions"/> the engine
/// enforces.
/// </summary>
internal sealed class OperationParametersFilter(IOptions<LeaseOptions> options, IOptions<SemaphoreOptions> semaphores) : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<OperationParameters>().FirstOrDefault() is not { } declared)
        {
            return;
        }

        var limits = new ParameterLimits(options.Value, semaphores.Value, declared.Subject);
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
                Name = LeaseRules.IdempotencyKey,
                In = ParameterLocation.Header,
                Required = false,
                Description = $"Retry-safe acquire: a retry with the same key while the {declared.Subject} is held returns the same lease. 1-{LeaseRules.MaxIdempotencyKeyLength} printable ASCII characters.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1, MaxLength = LeaseRules.MaxIdempotencyKeyLength },
            });
        }

        if (properties.Count == 0 || declared.QueryOnly)
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

    private static OpenApiSchema SchemaOf(LeaseParameter parameter, bool nullable)
    {
        var type = parameter.Kind == ParameterKind.Text ? JsonSchemaType.String : JsonSchemaType.Integer;
        return new OpenApiSchema
        {
            Type = nullable ? type | JsonSchemaType.Null : type,
            Format = parameter.Kind == ParameterKind.Text ? null : "int64",
            MinLength = parameter.Kind == ParameterKind.Text ? parameter.MinLength : null,
            MaxLength = parameter.Kind == ParameterKind.Text ? parameter.MaxLength : null,
        };
    }
}

/// <summary>An example of each body the API sends or takes, shown by Swagger UI.</summary>
internal sealed class ExampleFilter : ISchemaFilter
{
    private static readonly Dictionary<Type, string> Examples = new()
    {
        [typeof(LeaseResponse)] = """{"key":"orders-42","token":"16d6b288d3740b2b5ea03dc7f735e33f","fencingToken":1796011211951810,"ttlMs":30000,"expiresAt":"2026-11-26T14:24:19.026+00:00","acquiredAt":"2026-11-26T14:23:49.026+00:00","maxHoldMs":null,"owner":"billing-cron"}""",
        [typeof(LockInfoResponse)] = """{"key":"orders-42","fencingToken":1796011211951810,"owner":"billing-cron","ttlMs":29827,"expiresAt":"2026-11-26T14:24:19.033+00:00","acquiredAt":"2026-11-26T14:23:49.026+00:00","maxHoldMs":null}""",
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema concrete && Examples.TryGetValue(context.Type, out var example))
        {
            concrete.Examples = [JsonNode.Parse(example)!];
        }
    }
}
