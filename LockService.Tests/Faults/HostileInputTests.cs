using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LockService.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Faults;

/// <summary>
/// A table-driven barrage of hostile requests over every endpoint of /locks and /semaphores: every answer is a 4xx
/// problem+json, a canary lock and a canary permit taken before are still held with the same fencing tokens after, and the
/// service answers normally.
/// </summary>
public sealed class HostileInputTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private static readonly string[] BadKeys =
    [
        "", ".", ".a", "-a", "_a", "a b", "a%20b", "a%2Fb", "%7Ba%7D", "a{b", "a}b", "%00", "a%0Ab", "caf%C3%A9", "%F0%9F%94%92",
        new string('k', 201), "a;b", "a'b", "a%22b", "a*b", "a?b=", "a%5Cb", "..", "a\\b", "%25", "%27%29%3B%20redis.call(%27FLUSHALL%27)%20--",
    ];

    private static readonly string[] BadTokens =
    [
        "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef", new string('f', 31), new string('f', 33), new string('g', 32), "null", "..", "%00",
        "0123456789abcdef0123456789abcde%20",
    ];

    private static readonly string[] BadNumbers = ["", "-1", "+5", "5.0", "1e3", "0x10", "abc", "9999999999999999999999", "5000%20", "%205000", "NaN", "Infinity", "9"];

    private static readonly string[] BadBodies =
    [
        "{", "}", "[]", "null", "\"str\"", "42", "{\"ttlMs\":\"5000\"}", "{\"ttlMs\":5000.5}", "{\"ttlMs\":1e3}", "{\"ttlMs\":-1}",
        "{\"ttlMs\":99999999999999999999}", "{\"ttlMs\":{}}", "{\"ttlMs\":[1]}", "{\"owner\":1}", "{\"owner\":\"\"}", "{\"owner\":\"\\u0000\"}",
        "{\"owner\":\"a\",\"owner\":\"b\"}", "{\"x\":1}", "{\"ttlMs\":5000} trailing", "{\"ttlMs\":5000,}", "{'ttlMs':5000}", "{\"ttlMs\":5000 /*c*/}",
        new string('[', 5000), "{\"owner\":\"" + new string('x', 4100) + "\"}",
    ];

    [Fact]
    public async Task A_barrage_of_hostile_requests_gets_only_4xx_problems_and_changes_nothing()
    {
        await using var kestrel = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(kestrel.CreateClient());
        var key = Keys.Unique(nameof(A_barrage_of_hostile_requests_gets_only_4xx_problems_and_changes_nothing));
        var requests = new List<(HttpMethod Method, string Path, string? Body, string? ContentType)>();
        var canaries = new List<(LeaseResource Resource, Canary Canary)>();
        foreach (var resource in LeaseResource.All)
        {
            var canary = await resource.HoldAsync(client, key, "ttlMs=60000&owner=canary");
            canaries.Add((resource, canary));
            AddBarrage(resource, canary);
        }

        var answers = new Dictionary<int, int>();
        foreach (var (method, path, body, contentType) in requests)
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
                request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }

            using var response = await client.Http.SendAsync(request);
            var status = (int)response.StatusCode;
            answers[status] = answers.GetValueOrDefault(status) + 1;
            Assert.True(status is >= 400 and < 500, $"{method} {path} {body?[..Math.Min(body.Length, 40)]} -> {status}");
            // A NUL byte in the path is refused by Kestrel itself while parsing the request line, before any
            // application code runs; that bare 400 is the one answer without a problem body (see docs/api.md).
            if (path.Contains("%00", StringComparison.Ordinal))
            {
                Assert.Equal(400, status);
            }
            else if (method != HttpMethod.Head)
            {
                Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", $"{method} {path} -> {status} {response.Content.Headers.ContentType}");
                var text = await response.Content.ReadAsStringAsync();
                Assert.DoesNotContain("Exception", text);
                Assert.DoesNotContain("   at ", text);
            }
        }

        Assert.True(requests.Count > 500, $"barrage of {requests.Count}");
        foreach (var (resource, canary) in canaries)
        {
            await resource.AssertUnchangedAsync(client, key, canary, 30_000, 60_000);
            Assert.Equal(HttpStatusCode.Created, (await client.SendAsync(HttpMethod.Post, resource.AcquirePath(key + "-after"))).Status);
        }

        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(HttpMethod.Get, "/health/ready")).Status);

        void AddBarrage(LeaseResource resource, Canary canary)
        {
            foreach (var bad in BadKeys)
            {
                requests.Add((HttpMethod.Post, $"/{resource.Name}/{bad}", null, null));
                requests.Add((HttpMethod.Get, $"/{resource.Name}/{bad}", null, null));
                requests.Add((HttpMethod.Delete, $"/{resource.Name}/{bad}/{canary.Token}", null, null));
                requests.Add((HttpMethod.Patch, $"/{resource.Name}/{bad}/{canary.Token}", null, null));
            }

            foreach (var bad in BadTokens)
            {
                requests.Add((HttpMethod.Delete, $"/{resource.Name}/{key}/{bad}", null, null));
                requests.Add((HttpMethod.Patch, $"/{resource.Name}/{key}/{bad}?ttlMs=1000", null, null));
                requests.Add((HttpMethod.Get, $"/{resource.Name}/{key}/{bad}", null, null));
            }

            foreach (var number in BadNumbers)
            {
                foreach (var name in new[] { "ttlMs", "waitMs" })
                {
                    requests.Add((HttpMethod.Post, resource.AcquirePath(key, $"{name}={number}"), null, null));
                    requests.Add((HttpMethod.Patch, $"/{resource.Name}/{key}/{canary.Token}?ttlMs={number}&{(name == "waitMs" ? "waitMs=1" : "x=1")}", null, null));
                }
            }

            foreach (var body in BadBodies)
            {
                requests.Add((HttpMethod.Post, resource.AcquirePath(key), body, "application/json"));
                requests.Add((HttpMethod.Patch, $"/{resource.Name}/{key}/{canary.Token}", body, "application/json"));
            }

            foreach (var contentType in new[] { "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/jsonx" })
            {
                requests.Add((HttpMethod.Post, resource.AcquirePath(key), "{\"ttlMs\":1000}", contentType));
                requests.Add((HttpMethod.Patch, $"/{resource.Name}/{key}/{canary.Token}", "{\"ttlMs\":1000}", contentType));
            }

            foreach (var method in new[] { "PUT", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "BREW" })
            {
                requests.Add((new HttpMethod(method), $"/{resource.Name}/{key}", null, null));
                requests.Add((new HttpMethod(method), $"/{resource.Name}/{key}/{canary.Token}", null, null));
            }

            requests.Add((HttpMethod.Post, resource.AcquirePath(key, "ttlMs=1000&ttlMs=2000"), null, null));
            requests.Add((HttpMethod.Post, resource.AcquirePath(key, "ttlMs=1000"), "{\"ttlMs\":2000}", "application/json"));
            requests.Add((HttpMethod.Post, resource.AcquirePath(key, "owner=%01ctl"), null, null));
            requests.Add((HttpMethod.Post, resource.AcquirePath(key, $"owner={new string('o', 129)}"), null, null));
            requests.Add((HttpMethod.Delete, $"/{resource.Name}/{key}/{new string('0', 32)}", null, null));
            requests.Add((HttpMethod.Patch, $"/{resource.Name}/{key}/{new string('0', 32)}?ttlMs=90000", null, null));
        }
    }

    [Fact]
    public async Task Broken_bodies_and_odd_bytes_on_the_wire_are_4xx_and_change_nothing()
    {
        await using var kestrel = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(kestrel.CreateClient());
        var key = Keys.Unique(nameof(Broken_bodies_and_odd_bytes_on_the_wire_are_4xx_and_change_nothing));
        var canaries = new List<(LeaseResource Resource, Canary Canary)>();
        foreach (var resource in LeaseResource.All)
        {
            canaries.Add((resource, await resource.HoldAsync(client, key, "ttlMs=60000&owner=canary")));
        }

        var free = key + "-free";

        // what, the request (Latin-1, so "\u00ff" is the byte 0xFF), whether the client then closes its side, the
        // status, and the member the errors object must name (null: no problem body to look at)
        var cases = new List<(string What, string Request, bool HalfClose, int Status, string? Member)>();
        foreach (var (method, path) in canaries.SelectMany(c => new[]
        {
            ("POST", c.Resource.AcquirePath(free)), ("PATCH", c.Resource.Path(key, c.Canary.Token)), ("DELETE", c.Resource.Path(key, c.Canary.Token)), ("GET", c.Resource.Path(key)),
        }))
        {
            var head = $"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n";
            // A client that closes its side has left: Kestrel aborts the request (a 499 on the request line), no answer.
            cases.Add(("a body shorter than its Content-Length, then the client leaves", head + "Content-Length: 100\r\n\r\n{\"owner\":\"a", true, 0, null));
            cases.Add(("a chunked body with a bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", false, 400, "body"));
            cases.Add(("a chunked body cut inside a chunk, then the client leaves", head + "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"ow", true, 0, null));
            cases.Add(("a chunked body without its last chunk, then the client leaves", head + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", true, 0, null));
            cases.Add(("a chunked body with invalid UTF-8 in a value", head + "Transfer-Encoding: chunked\r\n\r\n6\r\n{\"owne\r\n7\r\nr\":\"\u00ff\"}\r\n0\r\n\r\n", false, 400, "owner"));
            cases.Add(("a chunked body with a lone surrogate escape", head + "Transfer-Encoding: chunked\r\n\r\n12\r\n{\"owner\":\"\\ud800\"}\r\n0\r\n\r\n", false, 400, "owner"));
            cases.Add(("a chunked body with invalid UTF-8 in a name", head + "Transfer-Encoding: chunked\r\n\r\n7\r\n{\"\u00ff\":1}\r\n0\r\n\r\n", false, 400, "body"));
        }

        // Kestrel gives up on a body that stops coming (MinRequestBodyDataRate, after a 5 s grace period).
        var post = $"POST /locks/{free}";
        cases.Add(("a body shorter than its Content-Length, then silence", $"{post} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"owner\":\"a", false, 400, "body"));
        cases.Add(("an empty Idempotency-Key", $"{post} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIdempotency-Key: \r\n\r\n", false, 400, "Idempotency-Key"));
        cases.Add(("UTF-16 with its charset", $"{post} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json; charset=utf-16\r\nContent-Length: 4\r\n\r\n{{\u0000}}\u0000", false, 415, null));
        cases.Add(("an Idempotency-Key with the byte 0xFF", $"{post} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIdempotency-Key: a\u00ffb\r\n\r\n", false, 400, null));
        cases.Add(("an Idempotency-Key with an encoded surrogate", $"{post} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nIdempotency-Key: \u00ed\u00a0\u0080\r\n\r\n", false, 400, null));
        cases.Add(("a raw 0xFF in the query", $"{post}?owner=\u00ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, 400, null));
        cases.Add(("an encoded surrogate in the query", $"{post}?owner=%ed%a0%80&%ff=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, 400, "%ff"));

        var wrong = new List<string>();
        foreach (var (what, request, halfClose, status, member) in cases)
        {
            var (answer, text) = await RawAsync(kestrel.BaseAddress, Encoding.Latin1.GetBytes(request), halfClose);

            if (answer != status)
            {
                wrong.Add($"{what}: {request.Split('\r')[0]} -> {answer} {text}");
            }
            else if (member is not null
                && !JsonDocument.Parse(text[text.IndexOf('{', StringComparison.Ordinal)..(text.LastIndexOf('}') + 1)]).RootElement.GetProperty("errors").TryGetProperty(member, out _))
            {
                wrong.Add($"{what}: {request.Split('\r')[0]} -> errors without '{member}': {text}");
            }
        }

        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.DoesNotContain("UnexpectedError", kestrel.Log.All);
        foreach (var (resource, canary) in canaries)
        {
            await resource.AssertUnchangedAsync(client, key, canary, 30_000, 60_000);
            await resource.AssertFreeAsync(client, free);
        }
    }

    [Fact]
    public async Task A_500_is_logged_with_its_exception_and_stack_trace_and_tokens_redacted()
    {
        var token = Guid.NewGuid().ToString("N");
        await using var factory = new LockServiceFactory(fixture.Redis.ConnectionString);
        using var faulty = factory.WithWebHostBuilder(builder => builder.ConfigureTestServices(services => services.AddSingleton<IStartupFilter>(new FaultyRoute(token))));
        var client = new LockClient(faulty.CreateClient());

        var reply = await client.SendAsync(HttpMethod.Get, $"/faulty/{token}");

        reply.AssertProblem(HttpStatusCode.InternalServerError, "internal_error");
        Assert.DoesNotContain(token, reply.Body);
        var logged = factory.Log.Lines.Single(line => line.Contains("UnexpectedError", StringComparison.Ordinal));
        Assert.Contains("System.InvalidOperationException", logged);
        Assert.Contains("System.FormatException", logged);                      // the inner exception too
        Assert.Contains($"at {typeof(FaultyRoute).FullName!.Replace('+', '.')}.{nameof(FaultyRoute.Fail)}", logged);   // its stack trace
        Assert.Contains("[redacted]", logged);
        Assert.DoesNotContain(token, factory.Log.All, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(token.ToUpperInvariant(), factory.Log.All, StringComparison.Ordinal);
    }

    /// <summary>A route that fails as a bug would, quoting the request path, token and all, in its exception.</summary>
    private sealed class FaultyRoute(string token) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            next(app);
            app.Run(http => Fail(http, token));
        };

        public static Task Fail(HttpContext http, string token) => throw new InvalidOperationException(
            $"Bug while answering {http.Request.Path}",
            new FormatException($"Not a number: {token.ToUpperInvariant()}"));
    }

    // Every request says Connection: close, so the answer ends when the server closes the connection.
    private static async Task<(int Status, string Text)> RawAsync(Uri server, byte[] request, bool halfClose)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request);
        if (halfClose)
        {
            tcp.Client.Shutdown(SocketShutdown.Send);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var answer = new MemoryStream();
        try
        {
            await stream.CopyToAsync(answer, timeout.Token);
        }
        catch (IOException)
        {
            // A reset after the answer: what arrived is the answer.
        }

        var text = Encoding.UTF8.GetString(answer.ToArray());
        return (text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) ? int.Parse(text[9..12], System.Globalization.CultureInfo.InvariantCulture) : 0, text);
    }
}
