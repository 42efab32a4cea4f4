using System.Net;
using System.Text;
using LockService.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Api;

/// <summary>
/// Every bad-input class of the contract answers 4xx problem+json and changes nothing, on /locks and on /semaphores alike
/// (each case runs against both, through <see cref="LeaseResource"/>).
/// </summary>
public sealed class BadInputTests(ApiFixture fixture, AuthFixture auth) : IClassFixture<ApiFixture>, IClassFixture<AuthFixture>
{
    private const string SomeToken = "0123456789abcdef0123456789abcdef";

    private LockClient Client => fixture.Client;

    public static TheoryData<string> BadKeys()
    {
        string[] keys = ["/", "", "/" + new string('k', 201), "/a/b/c/d", "/a%2Fb", "/100%25", "/with%20space", "/%7Bbrace%7D", "/caf%C3%A9", "/.hidden", "/-dash", "/_under", "/semi;colon"];
        return [.. LeaseResource.All.SelectMany(r => keys.Select(k => $"/{r.Name}{k}"))];
    }

    [Theory]
    [MemberData(nameof(BadKeys))]
    public async Task Acquire_with_a_bad_key_is_400_invalid_key(string path)
    {
        var reply = await Client.SendAsync(HttpMethod.Post, path);

        reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
    }

    [Theory]
    [InlineData("GET", "/locks/bad%20key")]
    [InlineData("GET", "/locks/.dot/" + SomeToken)]
    [InlineData("DELETE", "/locks/%7Bx%7D/" + SomeToken)]
    [InlineData("PATCH", "/locks/a%2Fb/" + SomeToken)]
    [InlineData("GET", "/semaphores/bad%20key")]
    [InlineData("GET", "/semaphores/.dot/" + SomeToken)]
    [InlineData("DELETE", "/semaphores/%7Bx%7D/" + SomeToken)]
    [InlineData("PATCH", "/semaphores/a%2Fb/" + SomeToken)]
    public async Task Other_endpoints_with_a_bad_key_are_400_invalid_key(string method, string path)
    {
        (await Client.SendAsync(new HttpMethod(method), path)).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
    }

    [Theory]
    [InlineData("0123456789ABCDEF0123456789ABCDEF")]
    [InlineData("0123456789abcdef")]
    [InlineData("0123456789abcdef0123456789abcdef0")]
    [InlineData("0123456789abcdef0123456789abcdeg")]
    [InlineData("not-a-token")]
    public async Task A_malformed_token_is_400_invalid_token_on_every_token_endpoint(string token)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(A_malformed_token_is_400_invalid_token_on_every_token_endpoint));
            var canary = await resource.HoldAsync(Client, key);

            foreach (var method in new[] { HttpMethod.Delete, HttpMethod.Patch, HttpMethod.Get })
            {
                (await Client.SendAsync(method, resource.Path(key, token))).AssertProblem(HttpStatusCode.BadRequest, "invalid_token");
            }

            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }
    }

    public static TheoryData<string, string?, string> BadParameters() => new()
    {
        // query, JSON body, the parameter the errors object must name
        { "ttlMs=1000&ttlMs=2000", null, "ttlMs" },
        { "ttlMs=1000", """{"ttlMs":2000}""", "ttlMs" },
        { "", """{"ttlMs":1000,"ttlMs":2000}""", "ttlMs" },
        { "ttl=5000", null, "ttl" },
        { "", """{"wait":5}""", "wait" },
        { "", """{"ttlMs":"5000"}""", "ttlMs" },
        { "", """{"ttlMs":5000.0}""", "ttlMs" },
        { "", """{"ttlMs":1e3}""", "ttlMs" },
        { "", """{"ttlMs":true}""", "ttlMs" },
        { "ttlMs=5000.0", null, "ttlMs" },
        { "ttlMs=1e3", null, "ttlMs" },
        { "ttlMs=%2B5000", null, "ttlMs" },
        { "ttlMs=", null, "ttlMs" },
        { "ttlMs=abc", null, "ttlMs" },
        { "ttlMs=99999999999999999999999", null, "ttlMs" },
        { "ttlMs=9", null, "ttlMs" },
        { "ttlMs=86400001", null, "ttlMs" },
        { "ttlMs=-5", null, "ttlMs" },
        { "waitMs=-1", null, "waitMs" },
        { "waitMs=60001", null, "waitMs" },
        { "owner=", null, "owner" },
        { "owner=" + "x", """{"owner":"y"}""", "owner" },
        { "", """{"owner":42}""", "owner" },
        { "", "{\"owner\":\"line\\nbreak\"}", "owner" },
        { "", "{\"owner\":\"" + new string('o', 129) + "\"}", "owner" },
        { "", "[1,2]", "body" },
        { "", "42", "body" },
        { "", "{\"ttlMs\":", "body" },
        { "", "{} {}", "body" },
        { "", "not json at all", "body" },
    };

    [Theory]
    [MemberData(nameof(BadParameters))]
    public async Task Bad_parameters_are_400_invalid_parameter_naming_the_parameter_and_change_nothing(string query, string? body, string parameter)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Bad_parameters_are_400_invalid_parameter_naming_the_parameter_and_change_nothing));
            var canary = await resource.HoldAsync(Client, key);

            var acquire = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath($"{key}-other", query), body);
            var problem = acquire.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.True(problem.GetProperty("errors").TryGetProperty(parameter, out _), $"{resource}: {acquire.Body}");
            await resource.AssertFreeAsync(Client, $"{key}-other");

            if (parameter is "ttlMs" or "body")
            {
                var extend = await Client.SendAsync(HttpMethod.Patch, $"{resource.Path(key, canary.Token)}?{query}", body);
                extend.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            }

            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }
    }

    [Theory]
    [InlineData("waitMs=1000")]
    [InlineData("owner=x")]
    public async Task Extend_takes_only_ttlMs(string query)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Extend_takes_only_ttlMs));
            var canary = await resource.HoldAsync(Client, key);

            (await Client.SendAsync(HttpMethod.Patch, $"{resource.Path(key, canary.Token)}?{query}")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        }
    }

    [Fact]
    public async Task Unknown_query_parameters_on_release_and_inspect_are_400()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Unknown_query_parameters_on_release_and_inspect_are_400));
            var canary = await resource.HoldAsync(Client, key);

            (await Client.SendAsync(HttpMethod.Delete, $"{resource.Path(key, canary.Token)}?force=true")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            (await Client.SendAsync(HttpMethod.Get, $"{resource.Path(key)}?verbose=1")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }
    }

    [Fact]
    public async Task Idempotency_key_header_that_is_too_long_or_not_printable_is_400()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Idempotency_key_header_that_is_too_long_or_not_printable_is_400));
            var tooLong = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), headers: new Dictionary<string, string> { ["Idempotency-Key"] = new string('i', 129) });

            tooLong.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            await resource.AssertFreeAsync(Client, key);
        }
    }

    [Fact]
    public async Task A_body_over_4_KiB_is_413_before_anything_else()
    {
        var body = "{\"owner\":\"" + new string('x', 5000) + "\"}";

        foreach (var resource in LeaseResource.All)
        {
            (await Client.SendAsync(HttpMethod.Post, resource.Path(".bad-key-too"), body)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
            (await Client.SendAsync(HttpMethod.Patch, resource.Path("k", SomeToken), body)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }
    }

    [Theory]
    [InlineData("DELETE", "/locks/k/" + SomeToken)]
    [InlineData("GET", "/locks/k/" + SomeToken)]
    [InlineData("GET", "/locks/k")]
    [InlineData("DELETE", "/semaphores/k/" + SomeToken)]
    [InlineData("GET", "/semaphores/k/" + SomeToken)]
    [InlineData("GET", "/semaphores/k")]
    public async Task Endpoints_without_parameters_still_answer_a_large_or_non_json_body_with_413_or_415(string method, string path)
    {
        var body = "{\"owner\":\"" + new string('x', 5000) + "\"}";

        (await Client.SendAsync(new HttpMethod(method), path, body)).AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        (await Client.SendAsync(new HttpMethod(method), path, "x=1", "text/plain")).AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Theory]
    [InlineData("locks")]
    [InlineData("semaphores")]
    public async Task A_chunked_body_over_4_KiB_is_413(string resource)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/{resource}/" + Keys.Unique("chunked"))
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{\"owner\":\"" + new string('x', 6000) + "\"}"))),
        };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.TransferEncodingChunked = true;

        using var response = await Client.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData(null)]
    public async Task A_body_that_is_not_json_is_415_saying_to_send_json_or_use_the_query(string? contentType)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(A_body_that_is_not_json_is_415_saying_to_send_json_or_use_the_query));
            var reply = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), "ttlMs=5000", contentType);

            var problem = reply.AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
            Assert.Contains("JSON", problem.GetProperty("detail").GetString());
            Assert.Contains("query", problem.GetProperty("detail").GetString());
            await resource.AssertFreeAsync(Client, key);
        }
    }

    [Fact]
    public async Task The_415_wins_over_a_bad_key_as_the_contract_orders_them()
    {
        foreach (var resource in LeaseResource.All)
        {
            (await Client.SendAsync(HttpMethod.Post, resource.Path("%7Bbad%7D"), "x", "text/plain")).AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        }
    }

    [Fact]
    public async Task Lua_looking_owner_is_stored_as_plain_text()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Lua_looking_owner_is_stored_as_plain_text));
            const string owner = "'); redis.call('FLUSHALL') --";
            var held = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), System.Text.Json.JsonSerializer.Serialize(new { owner }));

            Assert.Equal(owner, (await resource.CheckAsync(Client, key, held.Json.GetProperty("token").GetString()!)).Json.GetProperty("owner").GetString());
        }
    }

    public static TheoryData<string, byte[], string> UndecodableBodies() => new()
    {
        // what is wrong, the body's bytes, the member the errors object must name ("body" when no member can be named)
        { "invalid UTF-8 in a string value", Bytes("{\"owner\":\"a", new byte[] { 0xFF }, "b\"}"), "owner" },
        { "a lone continuation byte in a value", Bytes("{\"owner\":\"", new byte[] { 0x80 }, "\"}"), "owner" },
        { "a truncated UTF-8 sequence in a value", Bytes("{\"owner\":\"", new byte[] { 0xE2, 0x82 }, "\"}"), "owner" },
        { "an overlong encoding of '/'", Bytes("{\"owner\":\"", new byte[] { 0xC0, 0xAF }, "\"}"), "owner" },
        { "a surrogate encoded as UTF-8 (CESU)", Bytes("{\"owner\":\"", new byte[] { 0xED, 0xA0, 0x80 }, "\"}"), "owner" },
        { "a code point past U+10FFFF", Bytes("{\"owner\":\"", new byte[] { 0xF4, 0x90, 0x80, 0x80 }, "\"}"), "owner" },
        { "an escaped lone high surrogate", Bytes("{\"owner\":\"\\ud800\"}"), "owner" },
        { "an escaped lone low surrogate", Bytes("{\"owner\":\"x\\udc00\"}"), "owner" },
        { "escaped surrogates in the wrong order", Bytes("{\"owner\":\"\\udc00\\ud800\"}"), "owner" },
        { "an escaped high surrogate then a letter", Bytes("{\"owner\":\"\\ud800x\"}"), "owner" },
        { "an escaped high surrogate then raw UTF-8", Bytes("{\"owner\":\"\\ud800", new byte[] { 0xC3, 0xA9 }, "\"}"), "owner" },
        { "invalid UTF-8 in a member name", Bytes("{\"ow", new byte[] { 0xFF }, "ner\":\"x\"}"), "body" },
        { "an escaped lone surrogate as a member name", Bytes("{\"\\ud800\":1}"), "body" },
        { "a lone surrogate in a member name next to a good one", Bytes("{\"ttlMs\":null,\"a\\udfff\":1}"), "body" },
        { "invalid UTF-8 outside strings", Bytes("{\"ttlMs\":5000", new byte[] { 0xFF }, "}"), "body" },
        { "a raw NUL inside a string", Bytes("{\"owner\":\"a", new byte[] { 0x00 }, "\"}"), "body" },
        { "a raw NUL after the object", Bytes("{\"owner\":\"a\"}", new byte[] { 0x00 }), "body" },
        { "UTF-16 sent as if it were UTF-8", Encoding.Unicode.GetBytes("{\"owner\":\"a\"}"), "body" },
        { "a BOM that is not UTF-8's", Bytes(new byte[] { 0xFE, 0xFF }, "{}"), "body" },
        { "nesting past the depth limit", Bytes("{\"x\":" + new string('[', 64) + new string(']', 64) + "}"), "body" },
        { "nesting past the depth limit in a known member", Bytes("{\"ttlMs\":" + new string('[', 64) + new string(']', 64) + "}"), "body" },
        { "a number too large for 64 bits", Bytes("{\"ttlMs\":99999999999999999999999}"), "ttlMs" },
        { "a negative number too large for 64 bits", Bytes("{\"ttlMs\":-99999999999999999999999}"), "ttlMs" },
        { "a body cut inside a string", Bytes("{\"owner\":\"ab"), "body" },
        { "a body cut inside a number", Bytes("{\"ttlMs\":50"), "body" },
        { "a body cut after a member name", Bytes("{\"owner\""), "body" },
        { "an escaped NUL in the owner", Bytes("{\"owner\":\"\\u0000\"}"), "owner" },
    };

    [Theory]
    [MemberData(nameof(UndecodableBodies))]
    public async Task Undecodable_bodies_are_400_naming_the_member_on_every_endpoint_and_change_nothing(string what, byte[] body, string member)
    {
        foreach (var (resource, chunked) in LeaseResource.All.SelectMany(r => new[] { (r, false), (r, true) }))
        {
            var key = Keys.Unique(nameof(Undecodable_bodies_are_400_naming_the_member_on_every_endpoint_and_change_nothing));
            var canary = await resource.HoldAsync(Client, key);

            var acquire = await SendBytesAsync(HttpMethod.Post, resource.AcquirePath($"{key}-other"), body, chunked: chunked);
            AssertNames(acquire, member, $"{resource} acquire, {what}, chunked {chunked}");
            await resource.AssertFreeAsync(Client, $"{key}-other");

            foreach (var (method, path) in new[]
            {
                (HttpMethod.Patch, resource.Path(key, canary.Token)),
                (HttpMethod.Delete, resource.Path(key, canary.Token)),
                (HttpMethod.Get, resource.Path(key, canary.Token)),
                (HttpMethod.Get, resource.Path(key)),
            })
            {
                AssertNames(await SendBytesAsync(method, path, body, chunked: chunked), member, $"{method} {resource}, {what}, chunked {chunked}");
            }

            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }

        static void AssertNames(Reply reply, string member, string context)
        {
            Assert.True(reply.Status == HttpStatusCode.BadRequest, $"{context}: {(int)reply.Status} {reply.Body}");
            var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.True(problem.GetProperty("errors").TryGetProperty(member, out _), $"{context}: {reply.Body}");
        }
    }

    [Fact]
    public async Task Body_with_lone_surrogate_escape_is_400_naming_owner_and_changes_nothing()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Body_with_lone_surrogate_escape_is_400_naming_owner_and_changes_nothing));

            var reply = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), "{\"owner\":\"\\ud800\"}");

            var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.Contains("owner", problem.GetProperty("errors").EnumerateObject().Select(p => p.Name));
            await resource.AssertFreeAsync(Client, key);
        }
    }

    [Fact]
    public async Task Escaped_surrogate_pairs_and_empty_bodies_on_release_and_inspect_are_accepted()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Escaped_surrogate_pairs_and_empty_bodies_on_release_and_inspect_are_accepted));
            var token = (await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), "{\"owner\":\"\\ud83d\\udd12 x\",\"ttlMs\":null}")).Json.GetProperty("token").GetString()!;

            Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(HttpMethod.Get, resource.Path(key), "{}")).Status);
            Assert.Equal("\U0001F512 x", (await Client.SendAsync(HttpMethod.Get, resource.Path(key, token), "{}")).Json.GetProperty("owner").GetString());
            Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, resource.Path(key, token), "{}")).Status);
        }
    }

    [Fact]
    public async Task A_body_with_a_utf8_byte_order_mark_is_read_as_json()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(A_body_with_a_utf8_byte_order_mark_is_read_as_json));

            var reply = await SendBytesAsync(HttpMethod.Post, resource.AcquirePath(key), Bytes(new byte[] { 0xEF, 0xBB, 0xBF }, "{\"owner\":\"bom\"}"));

            Assert.True(reply.Status == HttpStatusCode.Created, reply.Body);
            Assert.Equal("bom", reply.Json.GetProperty("owner").GetString());
        }
    }

    [Theory]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/json; charset=iso-8859-1")]
    [InlineData("application/json; charset=\"utf-32\"")]
    public async Task A_json_body_in_a_charset_other_than_utf8_is_415_and_changes_nothing(string contentType)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(A_json_body_in_a_charset_other_than_utf8_is_415_and_changes_nothing));

            var reply = await SendBytesAsync(HttpMethod.Post, resource.AcquirePath(key), Bytes("{\"owner\":\"x\"}"), contentType);

            var problem = reply.AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
            Assert.Contains("UTF-8", problem.GetProperty("detail").GetString());
            await resource.AssertFreeAsync(Client, key);
        }
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/problem+json")]
    public async Task A_json_body_in_utf8_is_accepted_whatever_the_charset_spelling(string contentType)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(A_json_body_in_utf8_is_accepted_whatever_the_charset_spelling));

            var reply = await SendBytesAsync(HttpMethod.Post, resource.AcquirePath(key), Bytes("{\"owner\":\"caf\u00e9\"}"), contentType);

            Assert.True(reply.Status == HttpStatusCode.Created, reply.Body);
            Assert.Equal("caf\u00e9", reply.Json.GetProperty("owner").GetString());
        }
    }

    [Theory]
    [InlineData("owner=%ff")]
    [InlineData("owner=%ed%a0%80")]
    [InlineData("owner=%c0%af")]
    [InlineData("ttlMs=%ff")]
    [InlineData("ttlMs=%ed%a0%80")]
    [InlineData("%ff=1")]
    [InlineData("%ed%a0%80=1")]
    [InlineData("%ff")]
    [InlineData("owner=%00")]
    public async Task Odd_bytes_in_the_query_are_never_a_500_and_change_nothing(string query)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Odd_bytes_in_the_query_are_never_a_500_and_change_nothing));
            var canary = await resource.HoldAsync(Client, key);

            var acquire = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath($"{key}-other", query));
            Assert.True(acquire.Status is HttpStatusCode.Created or HttpStatusCode.BadRequest, $"{(int)acquire.Status} {acquire.Body}");
            foreach (var (method, path) in new[]
            {
                (HttpMethod.Patch, $"{resource.Path(key, canary.Token)}?{query}"),
                (HttpMethod.Delete, $"{resource.Path(key, canary.Token)}?{query}"),
                (HttpMethod.Get, $"{resource.Path(key, canary.Token)}?{query}"),
                (HttpMethod.Get, $"{resource.Path(key)}?{query}"),
            })
            {
                (await Client.SendAsync(method, path)).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            }

            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }
    }

    [Theory]
    [InlineData("\u00ff")]
    [InlineData("caf\u00e9")]
    [InlineData("\ud800")]
    [InlineData("a\tb")]
    public async Task Idempotency_key_header_with_odd_characters_is_400_and_changes_nothing(string value)
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Idempotency_key_header_with_odd_characters_is_400_and_changes_nothing));

            var reply = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key), headers: new Dictionary<string, string> { ["Idempotency-Key"] = value });

            var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.True(problem.GetProperty("errors").TryGetProperty("Idempotency-Key", out _), reply.Body);
            await resource.AssertFreeAsync(Client, key);
        }
    }

    public static TheoryData<string, string, string, string> WrongMethods()
    {
        // method, path under the resource ("{key}" and "{token}" filled in), the Allow header the contract names
        (string Method, string Path, string Allow)[] cases =
        [
            ("POST", "/{key}/{token}", "DELETE, GET, PATCH"),
            ("PUT", "/{key}/{token}", "DELETE, GET, PATCH"),
            ("OPTIONS", "/{key}/{token}", "DELETE, GET, PATCH"),
            ("TRACE", "/{key}/{token}", "DELETE, GET, PATCH"),
            ("BREW", "/{key}/{token}", "DELETE, GET, PATCH"),
            ("PUT", "/{key}/{token}/", "DELETE, GET, PATCH"),
            ("DELETE", "/{key}/", "GET, POST"),
            ("PATCH", "/{key}/", "GET, POST"),
            ("PUT", "/{key}", "GET, POST"),
            ("DELETE", "/{key}", "GET, POST"),
            ("PATCH", "/{key}", "GET, POST"),
            ("OPTIONS", "/{key}", "GET, POST"),
            ("PROPFIND", "/{key}", "GET, POST"),
            ("PUT", "/", "GET, POST"),
            ("DELETE", "", "GET, POST"),
        ];
        var data = new TheoryData<string, string, string, string>();
        foreach (var resource in LeaseResource.All)
        {
            foreach (var (method, path, allow) in cases)
            {
                data.Add(resource.Name, method, path, allow);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(WrongMethods))]
    public async Task A_method_a_route_does_not_take_is_405_with_allow_and_changes_nothing(string resourceName, string method, string path, string allow)
    {
        var resource = LeaseResource.All.Single(r => r.Name == resourceName);
        var key = Keys.Unique(nameof(A_method_a_route_does_not_take_is_405_with_allow_and_changes_nothing));
        var canary = await resource.HoldAsync(Client, key);
        path = $"/{resource.Name}" + path.Replace("{key}", key, StringComparison.Ordinal).Replace("{token}", canary.Token, StringComparison.Ordinal);

        foreach (var (body, contentType) in new (string?, string?)[] { (null, null), ("{\"ttlMs\":1000}", "application/json"), ("x", "text/plain"), (new string('x', 5000), "application/json") })
        {
            var reply = await Client.SendAsync(new HttpMethod(method), path, body, contentType);

            reply.AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
            Assert.Equal(allow, reply.ContentHeaders.Allow.Count > 0 ? string.Join(", ", reply.ContentHeaders.Allow) : reply.Headers.GetValues("Allow").Single());
        }

        await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
    }

    [Fact]
    public async Task Head_on_a_lock_route_is_405_with_allow()
    {
        foreach (var resource in LeaseResource.All)
        {
            using var request = new HttpRequestMessage(HttpMethod.Head, resource.Path(Keys.Unique(nameof(Head_on_a_lock_route_is_405_with_allow))));
            using var response = await Client.Http.SendAsync(request);

            Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
            Assert.Equal("GET, POST", string.Join(", ", response.Content.Headers.Allow));
        }
    }

    [Fact]
    public async Task The_allow_header_lists_exactly_the_methods_the_route_table_maps()
    {
        var endpoints = fixture.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        foreach (var (route, path) in LeaseResource.All.SelectMany(r => new[] { ($"/{r.Name}/{{key}}", r.Path("k")), ($"/{r.Name}/{{key}}/{{token}}", r.Path("k", SomeToken)) }))
        {
            var mapped = endpoints.Where(e => e.RoutePattern.RawText == route)
                .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? [])
                .Order(StringComparer.Ordinal);

            var reply = await Client.SendAsync(HttpMethod.Put, path);

            reply.AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
            Assert.Equal(string.Join(", ", mapped), string.Join(", ", reply.ContentHeaders.Allow));
        }
    }

    [Fact]
    public async Task Release_or_extend_with_an_empty_token_or_key_is_4xx_and_changes_nothing()
    {
        foreach (var resource in LeaseResource.All)
        {
            var key = Keys.Unique(nameof(Release_or_extend_with_an_empty_token_or_key_is_4xx_and_changes_nothing));
            var canary = await resource.HoldAsync(Client, key);

            // A trailing slash is no empty token: /locks/k/ is the path of /locks/{key}, as for routing (GET inspects k).
            (await Client.SendAsync(HttpMethod.Delete, $"{resource.Path(key)}/")).AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
            (await Client.SendAsync(HttpMethod.Patch, $"{resource.Path(key)}/?ttlMs=90000")).AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
            (await Client.SendAsync(HttpMethod.Delete, resource.Path(string.Empty, canary.Token))).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
            (await Client.SendAsync(HttpMethod.Patch, resource.Path(string.Empty, canary.Token))).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
            (await Client.SendAsync(HttpMethod.Delete, $"{resource.Path(key)}//")).AssertProblem(HttpStatusCode.BadRequest, "invalid_token");
            (await Client.SendAsync(HttpMethod.Delete, $"{resource.Path(key, canary.Token)}/x")).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");

            await resource.AssertUnchangedAsync(Client, key, canary, 20_000, 30_000);
        }
    }

    [Theory]
    [InlineData("POST", "/locks/a/b/c")]
    [InlineData("PUT", "/locks/a/b/c")]
    [InlineData("DELETE", "/locks/a/b/c/d")]
    [InlineData("BREW", "/locks/a/b/c")]
    [InlineData("POST", "/locks/")]
    [InlineData("GET", "/locks/")]
    [InlineData("POST", "/semaphores/a/b/c")]
    [InlineData("DELETE", "/semaphores/a/b/c/d")]
    [InlineData("POST", "/semaphores/")]
    [InlineData("GET", "/semaphores/")]
    public async Task A_path_no_route_can_take_is_400_invalid_key_whatever_the_method(string method, string path)
    {
        (await Client.SendAsync(new HttpMethod(method), path)).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
    }

    [Theory]
    [InlineData("PUT", "/locks/k")]
    [InlineData("POST", "/locks/k/" + SomeToken)]
    [InlineData("OPTIONS", "/locks/k/" + SomeToken)]
    [InlineData("PUT", "/semaphores/k")]
    [InlineData("POST", "/semaphores/k/" + SomeToken)]
    public async Task With_api_keys_a_wrong_method_is_401_without_a_key_and_405_with_one(string method, string path)
    {
        var anonymous = await auth.Client.SendAsync(new HttpMethod(method), path, new string('x', 5000));
        anonymous.AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

        var billing = await auth.As(AuthFixture.BillingKey).SendAsync(new HttpMethod(method), path, new string('x', 5000));
        billing.AssertProblem(HttpStatusCode.MethodNotAllowed, "method_not_allowed");
    }

    [Fact]
    public async Task The_openapi_document_describes_no_catch_all_route()
    {
        var document = (await Client.SendAsync(HttpMethod.Get, "/swagger/v1/swagger.json")).Json;
        var paths = document.GetProperty("paths").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToList();

        Assert.Equal(["/locks/{key}", "/locks/{key}/{token}"], paths.Where(p => p.StartsWith("/locks", StringComparison.Ordinal)));
        Assert.Equal(["/semaphores/{key}", "/semaphores/{key}/{token}"], paths.Where(p => p.StartsWith("/semaphores", StringComparison.Ordinal)));
    }

    private async Task<Reply> SendBytesAsync(HttpMethod method, string path, byte[] body, string contentType = "application/json", bool chunked = false)
    {
        using var request = new HttpRequestMessage(method, path)
        {
            Content = chunked ? new StreamContent(new MemoryStream(body)) : new ByteArrayContent(body),
        };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        request.Headers.TransferEncodingChunked = chunked;

        using var response = await Client.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return new Reply(response.StatusCode, text, response.Content.Headers.ContentType?.MediaType, response.Headers, response.Content.Headers);
    }

    private static byte[] Bytes(params object[] parts) =>
        [.. parts.SelectMany(part => part switch
        {
            string text => Encoding.UTF8.GetBytes(text),
            byte[] bytes => bytes,
            _ => throw new ArgumentException(part.GetType().Name),
        })];
}
