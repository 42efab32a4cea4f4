using System.Net;
using System.Text.Json;

namespace LockService.Tests.Infrastructure;

/// <summary>The semaphore routes through the test client, as curl would use them.</summary>
public static class SemaphoreClient
{
    public static Task<Reply> AcquirePermitAsync(this LockClient client, string key, string query = "", CancellationToken cancellationToken = default) =>
        client.SendAsync(HttpMethod.Post, $"/semaphores/{key}{Query(query)}", cancellationToken: cancellationToken);

    public static async Task<Permit> AcquirePermitOkAsync(this LockClient client, string key, string query)
    {
        var reply = await client.AcquirePermitAsync(key, query);
        Assert.True(reply.Status == HttpStatusCode.Created, $"acquire permit {key}?{query}: {(int)reply.Status} {reply.Body}");
        return reply.Permit;
    }

    public static Task<Reply> ReleasePermitAsync(this LockClient client, string key, string token) => client.SendAsync(HttpMethod.Delete, $"/semaphores/{key}/{token}");

    public static Task<Reply> ExtendPermitAsync(this LockClient client, string key, string token, string query = "") =>
        client.SendAsync(HttpMethod.Patch, $"/semaphores/{key}/{token}{Query(query)}");

    public static Task<Reply> InspectSemaphoreAsync(this LockClient client, string key) => client.SendAsync(HttpMethod.Get, $"/semaphores/{key}");

    public static Task<Reply> CheckPermitAsync(this LockClient client, string key, string token, string query = "") =>
        client.SendAsync(HttpMethod.Get, $"/semaphores/{key}/{token}{Query(query)}");

    /// <summary>The reason a 404 permit_not_held gives.</summary>
    public static string? ReasonOf(this Reply reply) => reply.AssertProblem(HttpStatusCode.NotFound, "permit_not_held").GetProperty("reason").GetString();

    private static string Query(string query) => query.Length == 0 || query.StartsWith('?') ? query : "?" + query;
}

public sealed record Permit(JsonElement Json)
{
    public string Key => Json.GetProperty("key").GetString()!;

    public string Token => Json.GetProperty("token").GetString()!;

    public int Slot => Json.GetProperty("slot").GetInt32();

    public long FencingToken => Json.GetProperty("fencingToken").GetInt64();

    public int Limit => Json.GetProperty("limit").GetInt32();

    public long TtlMs => Json.GetProperty("ttlMs").GetInt64();

    public DateTimeOffset ExpiresAt => Json.GetProperty("expiresAt").GetDateTimeOffset();
}
