using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Api;

/// <summary>
/// The OpenAPI document the service serves: its security requirement follows Auth:ApiKeys, it describes health and
/// metrics, its examples match its schemas, every operation and tag is described,
/// the document names a (relative) server, and the conformance check every API test runs through catches a mismatch.
/// </summary>
public sealed class OpenApiDocumentTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const string Token = "0123456789abcdef0123456789abcdef";

    [Fact]
    public async Task Without_api_keys_no_operation_asks_for_a_key_or_declares_401()
    {
        var document = await DocumentAsync(fixture.Client);

        Assert.False(document.TryGetProperty("security", out _));
        foreach (var (path, method, operation) in Operations(document))
        {
            Assert.False(operation.TryGetProperty("security", out _), $"{method} {path} asks for a key");
            Assert.False(operation.GetProperty("responses").TryGetProperty("401", out _), $"{method} {path} declares 401");
        }
    }

    [Fact]
    public async Task Health_and_metrics_are_described_and_every_example_matches_its_schema()
    {
        var document = await DocumentAsync(fixture.Client);
        var paths = document.GetProperty("paths");

        Assert.True(paths.GetProperty("/health/ready").GetProperty("get").GetProperty("responses").TryGetProperty("503", out _));
        Assert.True(paths.GetProperty("/health/live").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/metrics").GetProperty("get").GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("text/plain", out _));
        Assert.Empty(OpenApiContract.Parse(document.GetRawText()).CheckExamples());
    }

    [Fact]
    public async Task Every_operation_has_a_description_every_tag_used_is_declared_and_the_document_names_a_server()
    {
        var document = await DocumentAsync(fixture.Client);

        var declared = document.TryGetProperty("tags", out var tags)
            ? tags.EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!, t => t.TryGetProperty("description", out var d) ? d.GetString() : null)
            : [];
        foreach (var (path, method, operation) in Operations(document))
        {
            Assert.False(string.IsNullOrWhiteSpace(operation.TryGetProperty("description", out var description) ? description.GetString() : null), $"{method} {path} has no description");
            foreach (var tag in operation.GetProperty("tags").EnumerateArray().Select(t => t.GetString()!))
            {
                Assert.True(declared.TryGetValue(tag, out var tagDescription), $"{method} {path}: tag '{tag}' is not declared");
                Assert.False(string.IsNullOrWhiteSpace(tagDescription), $"tag '{tag}' has no description");
            }
        }

        var server = Assert.Single(document.GetProperty("servers").EnumerateArray());
        Assert.Equal("/", server.GetProperty("url").GetString());
    }

    [Fact]
    public async Task The_check_names_an_undeclared_status_a_member_the_document_lacks_and_a_code_the_response_does_not_list()
    {
        var contract = OpenApiContract.Parse((await DocumentAsync(fixture.Client)).GetRawText());
        const string lease = """{"key":"k","token":"0123456789abcdef0123456789abcdef","fencingToken":1,"ttlMs":10,"expiresAt":"2026-01-01T00:00:00Z","acquiredAt":"2026-01-01T00:00:00Z","maxHoldMs":null,"owner":null}""";
        const string problem = """{"type":"urn:lockservice:problem:lock_held","title":"t","status":409,"detail":"d","code":"lock_held","retryAfterMs":5}""";

        Assert.Empty(contract.Check(HttpMethod.Post, "/locks/k", 201, "application/json", lease));
        Assert.Contains("status 418 is not declared", Assert.Single(contract.Check(HttpMethod.Post, "/locks/k", 418, "application/problem+json", problem)));
        Assert.Contains("at $.color", Assert.Single(contract.Check(HttpMethod.Post, "/locks/k", 201, "application/json", lease.Replace("}", ""","color":"red"}""", StringComparison.Ordinal))));
        Assert.Contains("at $.fencingToken", Assert.Single(contract.Check(HttpMethod.Post, "/locks/k", 201, "application/json", lease.Replace("\"fencingToken\":1", "\"fencingToken\":\"1\"", StringComparison.Ordinal))));
        Assert.Contains("'lock_held' is not among", Assert.Single(contract.Check(HttpMethod.Delete, $"/locks/k/{Token}", 404, "application/problem+json", problem.Replace("409", "404", StringComparison.Ordinal))));
        Assert.Contains("content type 'text/html' is not declared", Assert.Single(contract.Check(HttpMethod.Get, "/locks/k", 200, "text/html", "<p>")));
        Assert.Contains("matches no operation", Assert.Single(contract.Check(HttpMethod.Get, "/nope", 200, "application/json", "{}")));
        Assert.NotEmpty(contract.Check(HttpMethod.Put, "/locks/k", 405, "application/problem+json", """{"status":405}"""));
    }

    [Fact]
    public void The_check_reads_each_event_of_a_stream_against_the_schema_x_events_names()
    {
        var contract = OpenApiContract.Parse("""
            {"openapi":"3.0.4","info":{"title":"t","version":"v1"},
             "paths":{"/locks/{key}":{"post":{"responses":{"200":{"description":"stream","content":{"text/event-stream":{"schema":{"type":"string"},
               "x-events":{"acquired":{"$ref":"#/components/schemas/Lease"},"lost":{"$ref":"#/components/schemas/Lost"}}}}}}}}},
             "components":{"schemas":{"Lease":{"type":"object","required":["token"],"properties":{"token":{"type":"string"}}},
               "Lost":{"type":"object","required":["reason"],"properties":{"reason":{"type":"string","enum":["forced","expired"]}}}}}}
            """);

        Assert.Empty(contract.Check(HttpMethod.Post, "/locks/k", 200, "text/event-stream", "event: acquired\ndata: {\"token\":\"t\"}\n\n: renewed\n\nevent: lost\ndata: {\"reason\":\"forced\"}\n\n"));
        Assert.Contains("event 'gone' is not among", Assert.Single(contract.Check(HttpMethod.Post, "/locks/k", 200, "text/event-stream", "event: gone\ndata: {}\n\n")));
        Assert.Contains("event 'lost': at $.reason", Assert.Single(contract.Check(HttpMethod.Post, "/locks/k", 200, "text/event-stream", "event: lost\ndata: {\"reason\":\"bored\"}\n\n")));
    }

    internal static async Task<JsonElement> DocumentAsync(LockClient client)
    {
        var reply = await client.SendAsync(HttpMethod.Get, OpenApiContract.DocumentPath);
        Assert.Equal(System.Net.HttpStatusCode.OK, reply.Status);
        return reply.Json;
    }

    internal static IEnumerable<(string Path, string Method, JsonElement Operation)> Operations(JsonElement document) =>
        document.GetProperty("paths").EnumerateObject().SelectMany(p => p.Value.EnumerateObject().Select(o => (p.Name, o.Name, o.Value)));
}

public sealed class OpenApiSecurityTests(AuthFixture fixture) : IClassFixture<AuthFixture>
{
    [Fact]
    public async Task With_api_keys_lock_operations_need_a_bearer_key_and_declare_401_while_health_and_metrics_stay_open()
    {
        var document = await OpenApiDocumentTests.DocumentAsync(fixture.Client);

        Assert.Equal("bearer", document.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer").GetProperty("scheme").GetString());
        foreach (var (path, method, operation) in OpenApiDocumentTests.Operations(document))
        {
            var admin = path.StartsWith("/admin", StringComparison.Ordinal);
            var lease = new[] { "/locks", "/semaphores", "/rwlocks", "/elections" }.Any(kind => path.StartsWith(kind, StringComparison.Ordinal));
            var open = !lease && !admin;
            Assert.True(operation.TryGetProperty("security", out var security) != open, $"{method} {path}");
            Assert.True(operation.GetProperty("responses").TryGetProperty("401", out _) != open, $"{method} {path} and 401");
            if (!open)
            {
                Assert.True(Assert.Single(security.EnumerateArray()).TryGetProperty("Bearer", out _));
            }

            if (admin)
            {
                // Operator endpoints say they need an admin key, and that a client key is refused.
                Assert.Contains("admin", operation.GetProperty("x-required-roles").EnumerateArray().Select(r => r.GetString()));
                Assert.True(operation.GetProperty("responses").TryGetProperty("403", out _), $"{method} {path} and 403");
            }
        }
    }
}
