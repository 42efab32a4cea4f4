using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.OpenApi;
using Xunit.Sdk;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// The service's own OpenAPI document, read from the running service, as a check of every answer the tests get: the
/// status is declared for the operation (method and path template), the content type is declared for that status,
/// the body matches the schema (problems: a code the response lists in <c>x-problem-codes</c>), and each event of a
/// stream matches the schema its <c>x-events</c> names. An answer no operation gives (404, 405, a path too deep) is
/// held to the shared problem schema. Schemas are read as closed (no member the document does not name), so a new
/// field fails a test until the document names it.
/// </summary>
public sealed class OpenApiContract
{
    public const string DocumentPath = "/swagger/v1/swagger.json";
    private const string ProblemSchema = "#/components/schemas/Problem";

    private static readonly Lock BuildGate = new();
    private static int _documents;
    private int _built;
    private readonly OpenApiDocument _document;
    private readonly JsonObject _json;
    private readonly JsonObject _definitions;
    private readonly Uri _base = new($"https://openapi.lockservice.test/{Interlocked.Increment(ref _documents)}/");
    private readonly ConcurrentDictionary<string, JsonSchema> _schemas = new(StringComparer.Ordinal);

    private OpenApiContract(OpenApiDocument document, JsonObject json)
    {
        _document = document;
        _json = json;
        _definitions = (JsonObject)Closed(json["components"]?["schemas"]?.DeepClone() ?? new JsonObject())!;
    }

    /// <summary>Reads the document the service serves; an invalid document fails at once.</summary>
    public static async Task<OpenApiContract> LoadAsync(HttpClient plain)
    {
        return Parse(await plain.GetStringAsync(new Uri(DocumentPath, UriKind.Relative)));
    }

    /// <summary>Reads a document's text; an invalid document fails at once.</summary>
    public static OpenApiContract Parse(string text)
    {
        var (document, diagnostic) = OpenApiDocument.Parse(text, "json");
        if (document is null || diagnostic?.Errors.Count > 0)
        {
            throw new XunitException($"{DocumentPath} is not a valid OpenAPI document: {string.Join("; ", diagnostic?.Errors.Select(e => $"{e.Pointer}: {e.Message}") ?? [])}");
        }

        var contract = new OpenApiContract(document, JsonNode.Parse(text)!.AsObject());
        contract.Warm();
        return contract;
    }

    /// <summary>Every mismatch of one answer with the document, empty when it conforms.</summary>
    public List<string> Check(HttpMethod method, string path, int status, string? mediaType, string body)
    {
        var problems = new List<string>();
        var statusText = status.ToString(CultureInfo.InvariantCulture);
        if (Find(method, path) is not { } found)
        {
            // No operation: routing's or the fallback's answer, always an error in the problem shape.
            if (status < 400)
            {
                problems.Add($"{method} {path} matches no operation of the document, yet answered {status}.");
            }
            else if (method != HttpMethod.Head)
            {
                CheckJson($"{method} {path} (no operation) {status}", "application/problem+json", mediaType, body, ProblemSchema, codes: null, problems);
            }

            return problems;
        }

        var (template, operation) = found;
        var name = $"{method.Method.ToUpperInvariant()} {template} ({operation.OperationId}) {status}";
        if (operation.Responses?.TryGetValue(statusText, out var declared) != true || declared is null)
        {
            problems.Add($"{name}: status {status} is not declared; the document declares {string.Join(", ", operation.Responses?.Keys.AsEnumerable() ?? [])}. Body: {Shorten(body)}");
            return problems;
        }

        if (declared.Content is not { Count: > 0 } content)
        {
            if (body.Length > 0)
            {
                problems.Add($"{name}: the document declares no body, the answer has one ({mediaType}): {Shorten(body)}");
            }

            return problems;
        }

        if (method == HttpMethod.Head)
        {
            return problems;
        }

        if (mediaType is null || !content.ContainsKey(mediaType))
        {
            problems.Add($"{name}: content type '{mediaType}' is not declared; the document declares {string.Join(", ", content.Keys)}. Body: {Shorten(body)}");
            return problems;
        }

        if (IsJson(mediaType))
        {
            var pointer = $"#/paths/{Escape(template)}/{method.Method.ToLowerInvariant()}/responses/{statusText}/content/{Escape(mediaType)}/schema";
            var codes = declared.Extensions?.TryGetValue("x-problem-codes", out var extension) == true && extension is JsonNodeExtension { Node: JsonArray list }
                ? list.Select(c => c!.GetValue<string>()).ToArray()
                : null;
            CheckJson(name, mediaType, mediaType, body, pointer, codes, problems);
        }
        else if (mediaType == "text/event-stream")
        {
            CheckEvents(name, template, method, statusText, body, problems);
        }

        return problems;
    }

    /// <summary>Builds the schema of every JSON response and runs one evaluation, so no answer waits for it.</summary>
    private void Warm()
    {
        foreach (var (template, item) in _document.Paths)
        {
            foreach (var (method, operation) in item.Operations ?? [])
            {
                foreach (var (status, response) in operation.Responses ?? [])
                {
                    foreach (var mediaType in (response.Content?.Keys ?? []).Where(IsJson))
                    {
                        // JsonSchema.Net readies a schema's keywords (formats, patterns) on its first evaluation.
                        var pointer = $"#/paths/{Escape(template)}/{method.Method.ToLowerInvariant()}/responses/{status}/content/{Escape(mediaType)}/schema";
                        _ = Validate("warm-up", pointer, JsonDocument.Parse("{}").RootElement, "{}").ToList();
                    }
                }
            }
        }

        if (Resolve(ProblemSchema) is not null)
        {
            _ = Validate("warm-up", ProblemSchema, JsonDocument.Parse("{}").RootElement, "{}").ToList();
        }
    }

    /// <summary>Every example of a component schema that does not match its schema (Swagger UI shows them).</summary>
    public List<string> CheckExamples() =>
        [.. (_json["components"]?["schemas"] as JsonObject ?? []).Where(s => s.Value?["example"] is not null)
            .SelectMany(s => Validate($"example of {s.Key}", $"#/components/schemas/{Escape(s.Key)}", JsonDocument.Parse(s.Value!["example"]!.ToJsonString()).RootElement, s.Value!["example"]!.ToJsonString()))];

    /// <summary>Whether an answer is part of the API the document describes (Swagger's own pages are not).</summary>
    public static bool Describes(string path) => !path.StartsWith("/swagger", StringComparison.OrdinalIgnoreCase);

    /// <summary>The operation for a method and path: a literal segment before a template's parameter, as routing does.</summary>
    private (string Template, OpenApiOperation Operation)? Find(HttpMethod method, string path)
    {
        // A trailing slash does not count, as routing does not count it (POST /locks/k/ acquires k).
        var segments = path.TrimEnd('/').Split('/');
        var best = default((string, OpenApiOperation)?);
        var bestLiterals = -1;
        foreach (var (template, item) in _document.Paths)
        {
            var parts = template.Split('/');
            if (parts.Length != segments.Length)
            {
                continue;
            }

            var literals = 0;
            var matches = true;
            for (var i = 0; i < parts.Length && matches; i++)
            {
                var parameter = parts[i].StartsWith('{') && parts[i].EndsWith('}');
                matches = parameter ? segments[i].Length > 0 : string.Equals(parts[i], segments[i], StringComparison.Ordinal);
                literals += parameter ? 0 : 1;
            }

            if (matches && literals > bestLiterals && item.Operations?.TryGetValue(method, out var operation) == true)
            {
                best = (template, operation);
                bestLiterals = literals;
            }
        }

        return best;
    }

    private void CheckJson(string name, string expectedType, string? mediaType, string body, string pointer, string[]? codes, List<string> problems)
    {
        if (mediaType != expectedType)
        {
            problems.Add($"{name}: content type '{mediaType}', the document says '{expectedType}'. Body: {Shorten(body)}");
            return;
        }

        JsonElement instance;
        try
        {
            instance = JsonDocument.Parse(body).RootElement;
        }
        catch (JsonException ex)
        {
            problems.Add($"{name}: the body is not JSON ({ex.Message}): {Shorten(body)}");
            return;
        }

        problems.AddRange(Validate(name, pointer, instance, body));
        if (codes is not null && instance.ValueKind == JsonValueKind.Object && instance.TryGetProperty("code", out var code)
            && code.ValueKind == JsonValueKind.String && !codes.Contains(code.GetString()))
        {
            problems.Add($"{name}: problem code '{code.GetString()}' is not among the response's x-problem-codes ({string.Join(", ", codes)}). Body: {Shorten(body)}");
        }
    }

    /// <summary>Checks each event of a whole (ended) stream; <see cref="EventStreamCheck"/> checks one as it is read.</summary>
    private void CheckEvents(string name, string template, HttpMethod method, string statusText, string body, List<string> problems)
    {
        foreach (var block in body.ReplaceLineEndings("\n").Split("\n\n"))
        {
            problems.AddRange(CheckEvent(name, template, method, statusText, block));
        }
    }

    /// <summary>Checks one Server-Sent Event (its lines, without the blank line that ends it) against <c>x-events</c>.</summary>
    private IEnumerable<string> CheckEvent(string name, string template, HttpMethod method, string statusText, string block)
    {
        var lines = block.Split('\n').Where(l => l.Length > 0 && !l.StartsWith(':')).ToArray();
        if (lines.Length == 0)
        {
            return [];
        }

        string Field(string field) => string.Join("\n", lines.Where(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Select(l => l[(field.Length + 1)..].TrimStart(' ')));
        var eventName = Field("event") is { Length: > 0 } named ? named : "message";
        var media = $"#/paths/{Escape(template)}/{method.Method.ToLowerInvariant()}/responses/{statusText}/content/{Escape("text/event-stream")}";
        if (Resolve(media)?["x-events"]?[eventName] is null)
        {
            return [$"{name}: event '{eventName}' is not among the stream's x-events ({string.Join(", ", (Resolve(media)?["x-events"] as JsonObject)?.Select(e => e.Key) ?? [])}): {Shorten(block)}"];
        }

        var data = Field("data");
        try
        {
            return Validate($"{name} event '{eventName}'", $"{media}/x-events/{Escape(eventName)}", JsonDocument.Parse(data).RootElement, data);
        }
        catch (JsonException ex)
        {
            return [$"{name} event '{eventName}': data is not JSON ({ex.Message}): {Shorten(data)}"];
        }
    }

    private IEnumerable<string> Validate(string name, string pointer, JsonElement instance, string body)
    {
        var schema = _schemas.GetOrAdd(pointer, Build);
        var result = schema.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true });
        if (result.IsValid)
        {
            yield break;
        }

        foreach (var detail in result.Details?.Where(d => d.Errors is { Count: > 0 }) ?? [result])
        {
            foreach (var (keyword, message) in detail.Errors ?? new Dictionary<string, string>())
            {
                yield return $"{name}: at {JsonPath(detail.InstanceLocation.ToString())} ({keyword} of {detail.EvaluationPath}): {message}. Body: {Shorten(body)}";
            }
        }
    }

    /// <summary>A schema of the document as JSON Schema 2020-12, with the components as <c>$defs</c>.</summary>
    private JsonSchema Build(string pointer)
    {
        var schema = Closed(Resolve(pointer)?.DeepClone(), map: false) as JsonObject
            ?? throw new XunitException($"The document has nothing at {pointer}.");
        // 2020-12, which OpenAPI 3.1 is built on and which lets OpenAPI's own keywords (example) pass as annotations.
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
        schema["$defs"] = _definitions.DeepClone();

        // JsonSchema.Net registers every schema it builds in one global registry, a plain Dictionary: two services
        // warming their documents at once (two instances in one test) corrupted it.
        lock (BuildGate)
        {
            return JsonSchema.FromText(schema.ToJsonString(), baseUri: new Uri(_base, Interlocked.Increment(ref _built).ToString(CultureInfo.InvariantCulture)));
        }
    }

    private JsonNode? Resolve(string pointer)
    {
        JsonNode? node = _json;
        foreach (var part in pointer.TrimStart('#', '/').Split('/'))
        {
            node = node?[part.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)];
        }

        return node;
    }

    /// <summary>
    /// OpenAPI 3.0 schema to JSON Schema: <c>nullable</c> becomes a null type, references point into <c>$defs</c>,
    /// OpenAPI's own words (<c>example</c>, <c>x-</c> extensions) go, and an object with properties but no word on
    /// others is closed, so a member the document lacks is a mismatch. <paramref name="map"/>: the node is a map of
    /// names to schemas (properties, components), not a schema.
    /// </summary>
    private static JsonNode? Closed(JsonNode? node, bool map = true)
    {
        switch (node)
        {
            case JsonArray array:
                foreach (var item in array)
                {
                    Closed(item, map: false);
                }

                return array;
            case JsonObject names when map:
                foreach (var (_, schema) in names)
                {
                    Closed(schema, map: false);
                }

                return names;
            case JsonObject schema:
                if (schema["$ref"] is JsonValue reference)
                {
                    schema["$ref"] = reference.GetValue<string>().Replace("#/components/schemas/", "#/$defs/", StringComparison.Ordinal);
                }

                if (schema["nullable"] is JsonValue nullable && nullable.GetValue<bool>() && schema["type"] is JsonValue type)
                {
                    schema["type"] = new JsonArray(type.GetValue<string>(), "null");
                }

                foreach (var word in schema.Select(p => p.Key).Where(k => k is "nullable" or "example" || k.StartsWith("x-", StringComparison.Ordinal)).ToList())
                {
                    schema.Remove(word);
                }

                if (schema.ContainsKey("properties") && !schema.ContainsKey("additionalProperties"))
                {
                    schema["additionalProperties"] = false;
                }

                foreach (var (name, child) in schema.ToArray())
                {
                    Closed(child, map: name is "properties" or "patternProperties" or "$defs");
                }

                return schema;
            default:
                return node;
        }
    }

    private static bool IsJson(string mediaType) => mediaType is "application/json" || mediaType.EndsWith("+json", StringComparison.Ordinal);

    private static string Escape(string part) => part.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static string JsonPath(string pointer) => "$" + string.Concat(pointer.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(p => int.TryParse(p, out _) ? $"[{p}]" : "." + p));

    private static string Shorten(string text) => text.Length <= 400 ? text : text[..400] + "...";
}

/// <summary>
/// Wraps the HTTP client of the tests: every answer is checked against the document the service serves, and a
/// mismatch fails the test with what did not match. A stream is checked event by event as the test reads it.
/// </summary>
public sealed class OpenApiConformanceHandler(Func<Task<OpenApiContract>> contract) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri!.IsAbsoluteUri ? request.RequestUri.AbsolutePath : request.RequestUri.OriginalString.Split('?')[0];
        if (!OpenApiContract.Describes(path))
        {
            return await base.SendAsync(request, cancellationToken);
        }

        // The document is read (and its schemas built) before the first request goes out, not after its answer
        // comes back: a test that times what follows an answer (a TTL running out) must not be charged for it.
        var document = await contract();
        var response = await base.SendAsync(request, cancellationToken);
        if (KestrelRefused(request, response))
        {
            return response;
        }

        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (mediaType == "text/event-stream")
        {
            response.Content = await EventStreamCheck.WrapAsync(document, request.Method, path, (int)response.StatusCode, response.Content, cancellationToken);
            return response;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        var problems = document.Check(request.Method, path, (int)response.StatusCode, mediaType, body);
        if (problems.Count > 0)
        {
            response.Dispose();
            throw new XunitException("The answer does not match the OpenAPI document:" + Environment.NewLine + string.Join(Environment.NewLine, problems));
        }

        return response;
    }

    /// <summary>
    /// Kestrel refuses a NUL byte in the path while it parses the request line, with a bare 400, before the service
    /// sees the request: the one answer without a problem body (docs/api.md), and no answer of the service.
    /// </summary>
    private static bool KestrelRefused(HttpRequestMessage request, HttpResponseMessage response) =>
        response.StatusCode == System.Net.HttpStatusCode.BadRequest && response.Content.Headers.ContentType is null
        && request.RequestUri!.OriginalString.Contains("%00", StringComparison.Ordinal);
}

/// <summary>A stream's body that checks each event against the document as the test reads it.</summary>
internal sealed class EventStreamCheck(Stream inner, Func<string, IEnumerable<string>> check) : ReadOnlyWrapper(inner)
{
    private readonly StringBuilder _pending = new();
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();

    public static async Task<HttpContent> WrapAsync(OpenApiContract document, HttpMethod method, string path, int status, HttpContent content, CancellationToken cancellationToken)
    {
        // The status and content type are checked like any answer, with an empty body.
        var problems = document.Check(method, path, status, "text/event-stream", string.Empty);
        if (problems.Count > 0)
        {
            throw new XunitException("The answer does not match the OpenAPI document:" + Environment.NewLine + string.Join(Environment.NewLine, problems));
        }

        var stream = new EventStreamCheck(await content.ReadAsStreamAsync(cancellationToken), block => document.Check(method, path, status, "text/event-stream", block + "\n\n"));
        var wrapped = new StreamContent(stream);
        foreach (var (name, values) in content.Headers)
        {
            wrapped.Headers.TryAddWithoutValidation(name, values);
        }

        return wrapped;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await Inner.ReadAsync(buffer, cancellationToken);
        var chars = new char[_decoder.GetCharCount(buffer.Span[..read], flush: read == 0)];
        _decoder.GetChars(buffer.Span[..read], chars, flush: read == 0);
        _pending.Append(chars).Replace("\r\n", "\n");
        var text = _pending.ToString();
        var end = text.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (end >= 0 || read == 0)
        {
            var complete = read == 0 ? text : text[..end];
            _pending.Remove(0, read == 0 ? text.Length : end + 2);
            var problems = complete.Split("\n\n").SelectMany(check).ToList();
            if (problems.Count > 0)
            {
                throw new XunitException("An event does not match the OpenAPI document:" + Environment.NewLine + string.Join(Environment.NewLine, problems));
            }
        }

        return read;
    }
}
