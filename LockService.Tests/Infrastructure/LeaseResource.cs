using System.Net;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// The two kinds of lease the API serves, <c>/locks</c> and <c>/semaphores</c>, for tests that hold both to the same rules
/// (bad input of every class): how to take one, what its problems are called, and how to see that nothing changed.
/// </summary>
public sealed record LeaseResource(string Name, string AcquireParameters, string NotHeldCode, string FreeCode)
{
    public static readonly LeaseResource Locks = new("locks", string.Empty, "lock_not_held", "lock_not_held");

    // A limit of 1: the canary fills the semaphore, so that a request that slipped through would be a 409, never a second permit.
    public static readonly LeaseResource Semaphores = new("semaphores", "limit=1", "permit_not_held", "semaphore_empty");

    public static IReadOnlyList<LeaseResource> All { get; } = [Locks, Semaphores];

    public string Path(string key, string? token = null) => token is null ? $"/{Name}/{key}" : $"/{Name}/{key}/{token}";

    /// <summary>The acquire's path and query: the parameters it needs (a semaphore's limit), then <paramref name="query"/>.</summary>
    public string AcquirePath(string key, string query = "") =>
        Path(key) + "?" + string.Join('&', new[] { AcquireParameters, query }.Where(q => q.Length > 0));

    /// <summary>Takes a lease that the test then checks is left as it was.</summary>
    public async Task<Canary> HoldAsync(LockClient client, string key, string query = "ttlMs=30000&owner=canary")
    {
        var reply = await client.SendAsync(HttpMethod.Post, AcquirePath(key, query));
        Assert.True(reply.Status == HttpStatusCode.Created, $"acquire {AcquirePath(key, query)}: {(int)reply.Status} {reply.Body}");
        return new Canary(reply.Json.GetProperty("token").GetString()!, reply.Json.GetProperty("fencingToken").GetInt64());
    }

    public Task<Reply> CheckAsync(LockClient client, string key, string token) => client.SendAsync(HttpMethod.Get, Path(key, token));

    /// <summary>The canary is still held by its token, with its fencing token, owner and a TTL in the range.</summary>
    public async Task AssertUnchangedAsync(LockClient client, string key, Canary canary, long minTtlMs, long maxTtlMs, string? owner = "canary")
    {
        var after = await CheckAsync(client, key, canary.Token);
        Assert.True(after.Status == HttpStatusCode.OK, $"{Name} {key}: {(int)after.Status} {after.Body}");
        Assert.Equal(canary.FencingToken, after.Json.GetProperty("fencingToken").GetInt64());
        if (owner is not null)
        {
            Assert.Equal(owner, after.Json.GetProperty("owner").GetString());
        }

        Assert.InRange(after.Json.GetProperty("ttlMs").GetInt64(), minTtlMs, maxTtlMs);
        if (this == Semaphores)
        {
            Assert.Equal(1, (await client.SendAsync(HttpMethod.Get, Path(key))).Json.GetProperty("held").GetInt32());
        }
    }

    /// <summary>Nothing is held under <paramref name="key"/>: the bad request took nothing.</summary>
    public async Task AssertFreeAsync(LockClient client, string key) =>
        (await client.SendAsync(HttpMethod.Get, Path(key))).AssertProblem(HttpStatusCode.NotFound, FreeCode);

    public override string ToString() => Name;
}

/// <summary>A lease taken before a bad request, to show that the request changed nothing.</summary>
public sealed record Canary(string Token, long FencingToken);
