using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// Metadata of an endpoint that can answer <paramref name="Status"/> with a <c>text/event-stream</c>: each event's name
/// and the type of its <c>data</c> (JSON).
/// </summary>
internal sealed record EventStream(int Status, IReadOnlyList<(string Event, Type Data)> Events);

/// <summary>
/// OpenAPI cannot describe Server-Sent Events, so a response that can be a stream gets a <c>text/event-stream</c>
/// content whose <c>x-events</c> extension maps each event name to the schema of its <c>data</c>; a client (and the
/// tests' conformance check) reads the stream's events against those schemas.
/// </summary>
internal sealed class EventStreamFilter : IOperationFilter
{
    public const string MediaType = "text/event-stream";
    public const string EventsExtension = "x-events";

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (var stream in context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<EventStream>())
        {
            var status = stream.Status.ToString(System.Globalization.CultureInfo.InvariantCulture);
            operation.Responses ??= [];
            if (!operation.Responses.TryGetValue(status, out var existing) || existing is not OpenApiResponse response)
            {
                response = new OpenApiResponse { Description = "A Server-Sent Events stream; its events are listed in x-events." };
                operation.Responses[status] = response;
            }

            var events = new JsonObject();
            foreach (var (name, data) in stream.Events)
            {
                var schema = context.SchemaGenerator.GenerateSchema(data, context.SchemaRepository);
                // An extension is plain JSON, so the data's schema is named by a $ref into components.
                events[name] = schema is OpenApiSchemaReference { Reference.Id: { } id }
                    ? new JsonObject { ["$ref"] = $"#/components/schemas/{id}" }
                    : throw new InvalidOperationException($"The data of event '{name}' must be a named type (a record), not {data.Name}.");
            }

            response.Content ??= new Dictionary<string, IOpenApiMediaType>();
            response.Content[MediaType] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, Description = "Server-Sent Events: each event's data is JSON, as x-events names." },
                Extensions = new Dictionary<string, IOpenApiExtension> { [EventsExtension] = new JsonNodeExtension(events) },
            };
        }
    }
}

internal static class EventStreamExtensions
{
    /// <summary>Declares that the endpoint answers <paramref name="status"/> with these Server-Sent Events.</summary>
    public static RouteHandlerBuilder ProducesEvents(this RouteHandlerBuilder builder, int status, params (string Event, Type Data)[] events) =>
        builder.WithMetadata(new EventStream(status, events));

    /// <summary>Declares the problem codes the endpoint answers with <paramref name="status"/>, where they differ from the lock routes'.</summary>
    public static TBuilder WithProblemCodes<TBuilder>(this TBuilder builder, int status, params string[] codes)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ProblemCodes(status, codes));
}
