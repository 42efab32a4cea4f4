using System.Text.Json.Nodes;
using LockService.Api.Errors;
using LockService.Api.Locks;
using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// The problem codes a response can carry, for an endpoint whose codes differ from <see cref="ProblemResponsesFilter"/>'s
/// defaults (semaphores, operators). Written into the document as the response's <c>x-problem-codes</c>.
/// </summary>
internal sealed record ProblemCodes(int Status, string[] Codes);

/// <summary>
/// Every error response of the document names one <c>Problem</c> schema, which lists what a problem body of this
/// service holds (ASP.NET's own ProblemDetails schemas leave the members open and say nothing of <c>code</c>), and
/// the codes it can carry for that operation and status, in its description and in <c>x-problem-codes</c>.
/// </summary>
internal sealed class ProblemResponsesFilter : IOperationFilter
{
    public const string SchemaId = "Problem";
    public const string CodesExtension = "x-problem-codes";

    // The operators' 403 (API-key roles), named here until Problems has it.
    private const string Forbidden = "forbidden";

    private static readonly Dictionary<string, string> Descriptions = new()
    {
        ["400"] = "Bad input, nothing changed (invalid_parameter has an 'errors' object keyed by parameter).",
        ["401"] = "API keys are configured and the request has none or a wrong one. Header WWW-Authenticate: Bearer.",
        ["403"] = "The API key's role does not allow this, or authentication is off and this needs a key.",
        ["404"] = "Not held (for a token, 'reason' says why: released, forced, expired or unknown).",
        ["409"] = "Held by someone else (a semaphore: full; a read/write lock: held, or a writer waits), with retryAfterMs (the holder's remaining TTL; a semaphore's earliest permit's; a read/write lock's earliest expiry in the way) and a Retry-After header.",
        ["413"] = "Body over 4 KiB.",
        ["415"] = "A body that is not JSON: send JSON or use the query string.",
        ["429"] = "Rate limit, or too many waiting, watching or holding a stream already on this instance or for this tenant; with Retry-After.",
        ["503"] = "Redis is unavailable (redis_unavailable, with Retry-After; answered within Redis:TimeoutMs plus a second), or a Redis key of this name holds data this service did not write (redis_data_invalid, naming the key; nothing changed, an operator must fix it).",
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        var declared = metadata.OfType<ProblemCodes>().ToList();
        var route = context.ApiDescription.RelativePath ?? string.Empty;
        if (metadata.OfType<LeaseOperationMetadata>().Any())
        {
            // Every lock route reads a body, if one is sent, before anything else (parameters or not), so each can
            // answer 413 and 415; the route table declares them only where the body carries parameters.
            foreach (var status in new[] { "413", "415" })
            {
                (operation.Responses ??= []).TryAdd(status, new OpenApiResponse
                {
                    Content = new Dictionary<string, IOpenApiMediaType> { ["application/problem+json"] = new OpenApiMediaType() },
                });
            }
        }

        foreach (var (status, response) in operation.Responses ?? [])
        {
            if (response is not OpenApiResponse concrete || concrete.Content?.ContainsKey("application/problem+json") != true)
            {
                continue;
            }

            var codes = declared.LastOrDefault(c => c.Status.ToString(System.Globalization.CultureInfo.InvariantCulture) == status)?.Codes
                ?? DefaultCodes(status, route);
            concrete.Content["application/problem+json"] = new OpenApiMediaType { Schema = Reference(context) };
            concrete.Description = $"code: {string.Join(", ", codes)}. {Descriptions.GetValueOrDefault(status, string.Empty)}".TrimEnd();
            concrete.Extensions ??= new Dictionary<string, IOpenApiExtension>();
            concrete.Extensions[CodesExtension] = new JsonNodeExtension(new JsonArray([.. codes.Select(c => JsonValue.Create(c))]));
        }
    }

    /// <summary>The lock routes' codes by status; a 400 names the path parameters the route has.</summary>
    private static string[] DefaultCodes(string status, string route) => status switch
    {
        "400" => [.. new[] { route.Contains("{key}", StringComparison.Ordinal) ? Problems.InvalidKey : null, route.Contains("{token}", StringComparison.Ordinal) ? Problems.InvalidToken : null, Problems.InvalidParameter }.OfType<string>()],
        "401" => [Problems.Unauthorized],
        "403" => [Forbidden],
        "404" => [Problems.LockNotHeld],
        "405" => [Problems.MethodNotAllowed],
        "409" => [Problems.LockHeld],
        "413" => [Problems.PayloadTooLarge],
        "415" => [Problems.UnsupportedMediaType],
        "429" => [Problems.TooManyRequests],
        "503" => [Problems.RedisUnavailable, Problems.RedisDataInvalid],
        _ => [],
    };

    /// <summary>The shared problem schema, added to the document the first time an operation needs it.</summary>
    public static OpenApiSchemaReference Reference(OperationFilterContext context)
    {
        if (!context.SchemaRepository.Schemas.ContainsKey(SchemaId))
        {
            context.SchemaRepository.AddDefinition(SchemaId, Schema());
        }

        return new OpenApiSchemaReference(SchemaId, context.Document);
    }

    private static OpenApiSchema Schema()
    {
        static OpenApiSchema Text(string description) => new() { Type = JsonSchemaType.String, Description = description };
        return new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "An RFC 9457 problem, as every error of this service is. Branch on 'code', not on 'title' or 'detail'.",
            Required = new HashSet<string>(["type", "title", "status", "detail", "code"]),
            Examples = [JsonNode.Parse("""{"type":"urn:lockservice:problem:lock_held","title":"The lock is held by someone else.","status":409,"detail":"Lock 'orders-42' is held; its holder's TTL runs out in 29912 ms.","code":"lock_held","retryAfterMs":29912}""")!],
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["type"] = Text("urn:lockservice:problem: followed by the code."),
                ["title"] = Text("A short summary of the problem, the same for every occurrence of a code."),
                ["status"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Description = "The response's status code." },
                ["detail"] = Text("What went wrong with this request."),
                ["code"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String,
                    Description = "The stable machine-readable code; each response lists its own in x-problem-codes.",
                    Enum = [.. AllCodes.Select(c => (JsonNode)JsonValue.Create(c))],
                },
                ["traceId"] = Text("The request's trace identifier, to find it in the service's log."),
                ["errors"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Description = "invalid_parameter only: what is wrong, keyed by parameter name.",
                    AdditionalProperties = new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
                },
                ["reason"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.String,
                    Description = "lock_not_held, permit_not_held and not_leader for a token only: why the token does not hold the lock or permit, or does not lead.",
                    Enum = [.. Reasons.Select(r => (JsonNode)JsonValue.Create(r))],
                },
                ["retryAfterMs"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Integer,
                    Format = "int64",
                    Description = "lock_held: the holder's remaining TTL; semaphore_full: when the earliest permit expires; rwlock_held: the earliest expiry in the way (a lease's, or a waiting writer's mark's); election_led: the leader's remaining TTL.",
                },
                ["leader"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object | JsonSchemaType.Null,
                    Description = "election_led only: the current leader's public state (never its token).",
                    Required = new HashSet<string>(["term", "value", "acquiredAt", "expiresAt"]),
                    Properties = new Dictionary<string, IOpenApiSchema>
                    {
                        ["term"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Description = "The leader's term (its fencing token)." },
                        ["value"] = Text("What the leader tells its followers."),
                        ["acquiredAt"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "When its term began, from Redis's clock." },
                        ["expiresAt"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "When its term ends unless extended, from Redis's clock." },
                    },
                },
            },
        };
    }

    private static readonly string[] Reasons = ["released", "forced", "expired", "unknown"];

    private static readonly string[] AllCodes =
    [
        Problems.InvalidKey, Problems.InvalidToken, Problems.InvalidParameter, Problems.Unauthorized, Forbidden,
        Problems.NotFound, Problems.LockNotHeld, Problems.MethodNotAllowed, Problems.LockHeld, Problems.PayloadTooLarge,
        Problems.UnsupportedMediaType, Problems.TooManyRequests, Problems.RedisUnavailable, Problems.RedisDataInvalid, Problems.InternalError,
        Problems.SemaphoreFull, Problems.PermitNotHeld, Problems.SemaphoreEmpty,
        Problems.RwLockHeld, Problems.RwLockNotHeld, Problems.RwLockFree,
        Elections.ElectionProblems.ElectionLed, Elections.ElectionProblems.NoLeader, Elections.ElectionProblems.NotLeader,
    ];
}

/// <summary>Drops ASP.NET's ProblemDetails schemas once every response names <see cref="ProblemResponsesFilter.SchemaId"/>.</summary>
internal sealed class UnusedProblemSchemasFilter : IDocumentFilter
{
    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        foreach (var type in new[] { typeof(ProblemDetails), typeof(HttpValidationProblemDetails) })
        {
            if (context.SchemaRepository.TryLookupByType(type, out var reference) && reference.Reference.Id is { } id)
            {
                swaggerDoc.Components?.Schemas?.Remove(id);
            }
        }
    }
}
