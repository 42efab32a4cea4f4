using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// Describes the operator's endpoints that are not route handlers, which API Explorer cannot see: the health checks
/// (<c>/health/live</c>, <c>/health/ready</c> with its JSON body, written by ReadyBody) and prometheus-net's
/// <c>/metrics</c>. They are open whatever Auth:ApiKeys holds, so they carry no security requirement.
/// </summary>
internal sealed class OperationsDocumentFilter : IDocumentFilter
{
    public const string ReadySchemaId = "ReadyReport";

    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        context.SchemaRepository.AddDefinition(ReadySchemaId, ReadySchema());
        var ready = new OpenApiSchemaReference(ReadySchemaId, swaggerDoc);
        swaggerDoc.Paths.Add("/health/live", Get(
            "health-live",
            DocumentTags.Health,
            "Liveness: 200 while the process runs (Redis is not looked at, so an outage does not get instances restarted)",
            "For a liveness probe: answers 200 'Healthy' whenever the process can answer at all, whatever Redis does. Open whatever Auth:ApiKeys holds.",
            ("200", "The process runs.", "text/plain", Text("Healthy"))));
        swaggerDoc.Paths.Add("/health/ready", Get(
            "health-ready",
            DocumentTags.Health,
            "Readiness: 200 when Redis answers, 503 otherwise; the body says why, and what the check of Redis's settings found",
            "For a readiness probe and a load balancer: 200 when Redis answers a PING within Redis:TimeoutMs; 503 when it does not, "
            + "or while the first check of Redis's settings found that Redis can evict lock keys (unless Redis:AcceptEvictionRisk is true). "
            + "The JSON body names the reason and every warning of the last settings check (eviction_risk, no_persistence, not_checked). Open whatever Auth:ApiKeys holds.",
            ("200", "Ready.", "application/json", ready),
            ("503", "Not ready: Redis does not answer, or its settings can lose locks.", "application/json", ready)));
        var metrics = Get(
            "metrics",
            DocumentTags.Metrics,
            "Prometheus metrics (lockservice_*): text format, or OpenMetrics when the Accept header asks for it",
            "Operation counts and durations by operation and outcome, waiting requests, hold times, forced releases, leases lost, "
            + "Redis errors and the findings of the Redis settings check, plus HTTP request durations and .NET runtime metrics. "
            + "No label carries a lock key or a tenant. Open whatever Auth:ApiKeys holds.",
            ("200", "The metrics.", "text/plain", Text(null)));
        ((OpenApiResponse)metrics.Operations![HttpMethod.Get].Responses!["200"]).Content!["application/openmetrics-text"] = new OpenApiMediaType { Schema = Text(null) };
        swaggerDoc.Paths.Add("/metrics", metrics);
    }

    private static OpenApiPathItem Get(string id, string tag, string summary, string about, params (string Status, string Description, string MediaType, IOpenApiSchema Schema)[] responses)
    {
        var operation = new OpenApiOperation
        {
            OperationId = id,
            Summary = summary,
            Description = about,
            Tags = new HashSet<OpenApiTagReference> { new(tag) },
            Responses = [],
        };
        foreach (var (status, description, mediaType, schema) in responses)
        {
            operation.Responses[status] = new OpenApiResponse
            {
                Description = description,
                Content = new Dictionary<string, IOpenApiMediaType> { [mediaType] = new OpenApiMediaType { Schema = schema } },
            };
        }

        return new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Get] = operation } };
    }

    private static OpenApiSchema Text(string? example) => new() { Type = JsonSchemaType.String, Examples = example is null ? null : [JsonValue.Create(example)] };

    private static OpenApiSchema ReadySchema()
    {
        static OpenApiSchema Text(string description) => new() { Type = JsonSchemaType.String, Description = description };
        return new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Required = new HashSet<string>(["status", "redis", "settingsCheckedAt", "acceptEvictionRisk", "warnings"]),
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["status"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [JsonValue.Create("Healthy"), JsonValue.Create("Degraded"), JsonValue.Create("Unhealthy")] },
                ["redis"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [JsonValue.Create("answers"), JsonValue.Create("does not answer")] },
                ["reason"] = Text("Why the instance is not ready (absent when it is)."),
                ["settingsCheckedAt"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String | JsonSchemaType.Null,
                    Format = "date-time",
                    Description = "When Redis's settings were last checked; null before the first check.",
                },
                ["acceptEvictionRisk"] = new OpenApiSchema { Type = JsonSchemaType.Boolean, Description = "Redis:AcceptEvictionRisk." },
                ["warnings"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Array,
                    Description = "What the last check of Redis's settings found unsafe.",
                    Items = new OpenApiSchema
                    {
                        Type = JsonSchemaType.Object,
                        Required = new HashSet<string>(["check", "node", "message"]),
                        Properties = new Dictionary<string, IOpenApiSchema>
                        {
                            ["check"] = Text("What was checked, e.g. eviction_risk, no_persistence."),
                            ["node"] = Text("The Redis node."),
                            ["message"] = Text("What is unsafe and what to do."),
                        },
                    },
                },
            },
        };
    }
}

/// <summary>
/// The response records are written whole (a null member as null, never left out), so every member is required;
/// a generated client can then trust that a member it reads is there.
/// </summary>
internal sealed class ResponseMembersRequiredFilter : ISchemaFilter
{
    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema { Properties.Count: > 0 } concrete && context.Type.Namespace?.StartsWith("LockService.Api", StringComparison.Ordinal) == true)
        {
            concrete.Required = new HashSet<string>(concrete.Properties.Keys, StringComparer.Ordinal);
        }
    }
}
