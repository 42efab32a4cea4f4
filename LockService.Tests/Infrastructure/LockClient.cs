using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace LockService.Tests.Infrastructure;

/// <summary>A thin client that speaks the wire contract, as curl would, and hands back status and JSON.</summary>
public sealed class LockClient(HttpClient http)
{
    public HttpClient Http { get; } = http;

    public Task<Reply> AcquireAsync(string key, string query = "", CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, $"/locks/{key}{Query(query)}", cancellationToken: cancellationToken);

    public async Task<Lease> AcquireOkAsync(string key, string query = "")
    {
        var reply = await AcquireAsync(key, query);
        Assert.True(reply.Status == HttpStatusCode.Created, $"acquire {key}: {(int)reply.Status} {reply.Body}");
        return reply.Lease;
    }

    public Task<Reply> ReleaseAsync(string key, string token) => SendAsync(HttpMethod.Delete, $"/locks/{key}/{token}");

    public Task<Reply> ExtendAsync(string key, string token, string query = "") => SendAsync(HttpMethod.Patch, $"/locks/{key}/{token}{Query(query)}");

    public Task<Reply> InspectAsync(string key) => SendAsync(HttpMethod.Get, $"/locks/{key}");

    public Task<Reply> CheckAsync(string key, string token) => SendAsync(HttpMethod.Get, $"/locks/{key}/{token}");

    public async Task<Reply> SendAsync(
        HttpMethod method, string path, string? body = null, string? contentType = "application/json",
        IDictionary<string, string>? headers = null, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = contentType is null ? null : MediaTypeHeaderValue.Parse(contentType);
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await Http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        return new Reply(response.StatusCode, text, response.Content.Headers.ContentType?.MediaType, response.Headers, response.Content.Headers);
    }

    private static string Query(string query) => query.Length == 0 || query.StartsWith('?') ? query : "?" + query;
}

public sealed record Reply(HttpStatusCode Status, string Body, string? MediaType, HttpResponseHeaders Headers, HttpContentHeaders ContentHeaders)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    public Lease Lease => new(Json);

    public Permit Permit => new(Json);

    public string? Code => MediaType == "application/problem+json" && Json.TryGetProperty("code", out var code) ? code.GetString() : null;

    /// <summary>Asserts an RFC 9457 problem with the contract's code, and returns it for further checks.</summary>
    public JsonElement AssertProblem(HttpStatusCode status, string code)
    {
        Assert.True(Status == status, $"expected {(int)status} {code}, got {(int)Status}: {Body}");
        Assert.Equal("application/problem+json", MediaType);
        var json = Json;
        Assert.Equal(code, json.GetProperty("code").GetString());
        Assert.Equal((int)status, json.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("title").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("detail").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("type").GetString()));
        return json;
    }
}

public sealed record Lease(JsonElement Json)
{
    public string Key => Json.GetProperty("key").GetString()!;

    public string Token => Json.GetProperty("token").GetString()!;

    public long FencingToken => Json.GetProperty("fencingToken").GetInt64();

    public long TtlMs => Json.GetProperty("ttlMs").GetInt64();
}

public static class Fences
{
    /// <summary>
    /// Asserts the contract's time-based fencing token: Redis's clock in microseconds (Redis runs on this machine,
    /// so within a minute of ours), below 2^53 so JavaScript reads it exactly.
    /// </summary>
    public static void AssertTimeBased(long fence)
    {
        var nowMicros = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        Assert.InRange(fence, nowMicros - 60_000_000, nowMicros + 60_000_000);
        Assert.True(fence < 1L << 53, $"fencing token {fence} is not below 2^53");
    }

    /// <summary>
    /// The last fencing token Redis keeps for a lock: the first field of its last-lease key (<c>fence state end token</c>),
    /// or the whole value when it is a bare number (written by an older version, or by a test).
    /// </summary>
    public static async Task<long> LastInRedisAsync(StackExchange.Redis.IDatabase db, string fenceKey)
    {
        var value = (string?)await db.StringGetAsync(fenceKey) ?? throw new Xunit.Sdk.XunitException($"{fenceKey} does not exist");
        return long.Parse(value.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Asserts that every fencing token is larger than the one before it.</summary>
    public static void AssertStrictlyIncreasing(IReadOnlyList<long> fences)
    {
        for (var i = 1; i < fences.Count; i++)
        {
            Assert.True(fences[i] > fences[i - 1], $"fencing token {i} ({fences[i]}) is not above the one before ({fences[i - 1]}): {string.Join(", ", fences)}");
        }
    }
}

public static class Handoff
{
    /// <summary>
    /// Asserts that a waiter got the lock after <paramref name="holder"/>, within <paramref name="bound"/> of the moment
    /// it became free (<paramref name="freed"/> started then). Callers pick a bound far below what the fallback they
    /// guard against would take (the re-check, the TTL), so that a loaded machine cannot break it.
    /// </summary>
    public static void AssertPrompt(Reply waiter, Lease holder, System.Diagnostics.Stopwatch freed, TimeSpan bound, string how)
    {
        Assert.Equal(HttpStatusCode.Created, waiter.Status);
        Assert.True(waiter.Lease.FencingToken > holder.FencingToken, "fencing tokens must increase");
        Assert.True(freed.Elapsed < bound, $"the waiter got the lock {freed.ElapsedMilliseconds} ms after {how}");
    }
}

public static class Keys
{
    /// <summary>A key no other test uses: the test's name plus a GUID, within the contract's 200 characters.</summary>
    public static string Unique(string name) => $"{name[..Math.Min(name.Length, 60)]}-{Guid.NewGuid():N}";

    /// <summary>The Redis keys of a lock under the default prefix, named by the service's own key-naming type.</summary>
    public static LockService.Core.Locks.LockKeys InRedis(string key, string tenant = "") =>
        LockService.Core.Locks.LockKeys.For(new LockService.Core.Leases.LeaseOptions().KeyPrefix, new LockService.Core.Leases.LeaseName(tenant, key));
}
