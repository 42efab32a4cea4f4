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
            options.OperationFilter<JsonBodyFilter>();
            options.AddSecurityRequirement(document => new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("Bearer", document)] = [] });
        });
        return services;
    }

    /// <summary>
    /// Documents an optional JSON body. Accepts() would do it too, but it also makes routing reject requests
    /// without a JSON content type before the handler can answer them with the contract's own 415.
    /// </summary>
    public static RouteHandlerBuilder WithBody<TBody>(this RouteHandlerBuilder builder) =>
        builder.WithMetadata(new JsonBodyMetadata(typeof(TBody)));

    public static WebApplication UseLockSwagger(this WebApplication app)
    {
        if (app.Configuration.GetValue("Swagger:Enabled", true))
        {
            app.UseSwagger();
            app.UseSwaggerUI(options => options.SwaggerEndpoint("/swagger/v1/swagger.json", "LockService v1"));
        }

        return app;
    }
}

internal sealed record JsonBodyMetadata(Type BodyType);

internal sealed class JsonBodyFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var body = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<JsonBodyMetadata>().FirstOrDefault();
        if (body is null)
        {
            return;
        }

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = false,
            Description = "Optional: the same parameters as the query string, as a JSON object (each parameter in one place only).",
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["application/json"] = new OpenApiMediaType { Schema = context.SchemaGenerator.GenerateSchema(body.BodyType, context.SchemaRepository) },
            },
        };
    }
}
