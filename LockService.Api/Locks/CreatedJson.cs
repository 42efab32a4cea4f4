using System.Reflection;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Metadata;

namespace LockService.Api.Locks;

/// <summary>
/// A 201 with a <c>Location</c> and a JSON body, written with the body's own source-generated
/// <see cref="JsonTypeInfo{T}"/>: the same bytes and OpenAPI metadata as <c>TypedResults.Created</c>, but through the
/// generated serializer's fast path. <c>TypedResults.Created</c> serializes with the HTTP JSON options, where the
/// generated metadata sits in a resolver chain and the converter-based path runs instead (per acquire+release cycle
/// that path was ~8 µs of the service's ~190 µs of CPU in <c>perf</c>, 2026-11-30).
/// </summary>
internal sealed class CreatedJson<TValue>(string location, TValue value, JsonTypeInfo<TValue> typeInfo)
    : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<TValue>, IEndpointMetadataProvider
{
    public int? StatusCode => StatusCodes.Status201Created;

    public TValue? Value => value;

    object? IValueHttpResult.Value => value;

    public string Location => location;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status201Created;
        response.Headers.Location = location;
        return response.WriteAsJsonAsync(value, typeInfo);
    }

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status201Created, typeof(TValue), ["application/json"]));
}
