using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Api;

public sealed class IdempotencyTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private LockClient Client => fixture.Client;

    private Task<Reply> AcquireAsync(string key, string idempotencyKey, string query = "") =>
        Client.SendAsync(HttpMethod.Post, $"/locks/{key}{(query.Length > 0 ? "?" + query : "")}", headers: new Dictionary<string, string> { ["Idempotency-Key"] = idempotencyKey });

    [Fact]
    public async Task A_retry_while_the_lock_is_held_returns_the_original_lease_and_ignores_its_own_parameters()
    {
        var key = Keys.Unique(nameof(A_retry_while_the_lock_is_held_returns_the_original_lease_and_ignores_its_own_parameters));
        var first = await AcquireAsync(key, "job-1", "ttlMs=20000&owner=first");

        var retry = await AcquireAsync(key, "job-1", "ttlMs=90000&owner=retry");

        // The same lease as it stands now: only what remains of its TTL may have moved (ReplayTests hold it to the expiry).
        Assert.Equal(HttpStatusCode.Created, retry.Status);
        Assert.Equal(WithoutTtl(first.Json), WithoutTtl(retry.Json));
        Assert.InRange(retry.Lease.TtlMs, 1, 20_000);
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.Equal("first", (await Client.InspectAsync(key)).Json.GetProperty("owner").GetString());
    }

    // The body's members but ttlMs and expiresAt, which a replay answers as they are now.
    private static string WithoutTtl(System.Text.Json.JsonElement body) =>
        string.Join(',', body.EnumerateObject().Where(p => p.Name is not ("ttlMs" or "expiresAt")).Select(p => $"{p.Name}={p.Value.GetRawText()}"));

    [Fact]
    public async Task Another_idempotency_key_or_none_gets_409()
    {
        var key = Keys.Unique(nameof(Another_idempotency_key_or_none_gets_409));
        await AcquireAsync(key, "job-1");

        (await AcquireAsync(key, "job-2")).AssertProblem(HttpStatusCode.Conflict, "lock_held");
        (await Client.AcquireAsync(key)).AssertProblem(HttpStatusCode.Conflict, "lock_held");
    }

    [Fact]
    public async Task After_release_the_same_header_matches_nothing_and_a_new_acquire_happens()
    {
        var key = Keys.Unique(nameof(After_release_the_same_header_matches_nothing_and_a_new_acquire_happens));
        var first = (await AcquireAsync(key, "job-1")).Lease;
        await Client.ReleaseAsync(key, first.Token);

        var again = await AcquireAsync(key, "job-1");

        Assert.Equal(HttpStatusCode.Created, again.Status);
        Assert.NotEqual(first.Token, again.Lease.Token);
        Assert.True(again.Lease.FencingToken > first.FencingToken, "fencing tokens must increase");
    }

    [Fact]
    public async Task After_expiry_the_same_header_matches_nothing()
    {
        var key = Keys.Unique(nameof(After_expiry_the_same_header_matches_nothing));
        var first = (await AcquireAsync(key, "job-1", "ttlMs=30")).Lease;
        await RedisServer.WaitUntilAsync(async () => (await Client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "expiry");

        var again = await AcquireAsync(key, "job-1");

        Assert.NotEqual(first.Token, again.Lease.Token);
    }

    [Fact]
    public async Task The_same_header_on_another_lock_key_is_unrelated()
    {
        var key = Keys.Unique(nameof(The_same_header_on_another_lock_key_is_unrelated));
        var a = (await AcquireAsync(key + "-a", "job-1")).Lease;
        var b = await AcquireAsync(key + "-b", "job-1");

        Assert.Equal(HttpStatusCode.Created, b.Status);
        Assert.NotEqual(a.Token, b.Lease.Token);
    }

    [Fact]
    public async Task A_retry_that_arrives_while_the_first_request_still_waits_gets_the_same_lease()
    {
        var key = Keys.Unique(nameof(A_retry_that_arrives_while_the_first_request_still_waits_gets_the_same_lease));
        var holder = await Client.AcquireOkAsync(key, "ttlMs=30000");
        var baseline = fixture.Factory.Engine().WaitingCount;
        var first = AcquireAsync(key, "job-1", "waitMs=20000");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Engine().WaitingCount >= baseline + 1), TimeSpan.FromSeconds(10), "first waiter");
        var retry = AcquireAsync(key, "job-1", "waitMs=20000");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Engine().WaitingCount >= baseline + 2), TimeSpan.FromSeconds(10), "retry waiting");

        await Client.ReleaseAsync(key, holder.Token);
        var replies = await Task.WhenAll(first, retry).WaitAsync(TimeSpan.FromSeconds(5));

        Assert.All(replies, r => Assert.Equal(HttpStatusCode.Created, r.Status));
        Assert.Equal(replies[0].Lease.Token, replies[1].Lease.Token);
        Assert.True(replies[1].Lease.FencingToken > holder.FencingToken, "fencing tokens must increase");
    }
}
