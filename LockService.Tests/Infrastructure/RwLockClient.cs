using System.Net;

namespace LockService.Tests.Infrastructure;

/// <summary>The read/write lock routes through the test client, as curl would use them.</summary>
public static class RwLockClient
{
    public static Task<Reply> AcquireRwAsync(this LockClient client, string key, string query = "", CancellationToken cancellationToken = default) =>
        client.SendAsync(HttpMethod.Post, $"/rwlocks/{key}{Query(query)}", cancellationToken: cancellationToken);

    public static async Task<Lease> AcquireRwOkAsync(this LockClient client, string key, string query)
    {
        var reply = await client.AcquireRwAsync(key, query);
        Assert.True(reply.Status == HttpStatusCode.Created, $"acquire rwlock {key}?{query}: {(int)reply.Status} {reply.Body}");
        return reply.Lease;
    }

    public static Task<Reply> ReleaseRwAsync(this LockClient client, string key, string token) => client.SendAsync(HttpMethod.Delete, $"/rwlocks/{key}/{token}");

    public static Task<Reply> ExtendRwAsync(this LockClient client, string key, string token, string query = "") =>
        client.SendAsync(HttpMethod.Patch, $"/rwlocks/{key}/{token}{Query(query)}");

    public static Task<Reply> InspectRwAsync(this LockClient client, string key) => client.SendAsync(HttpMethod.Get, $"/rwlocks/{key}");

    public static Task<Reply> CheckRwAsync(this LockClient client, string key, string token, string query = "") =>
        client.SendAsync(HttpMethod.Get, $"/rwlocks/{key}/{token}{Query(query)}");

    /// <summary>The reason a 404 rwlock_not_held gives.</summary>
    public static string? RwReasonOf(this Reply reply) => reply.AssertProblem(HttpStatusCode.NotFound, "rwlock_not_held").GetProperty("reason").GetString();

    private static string Query(string query) => query.Length == 0 || query.StartsWith('?') ? query : "?" + query;
}
