using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Api;

/// <summary>A replayed acquire (Idempotency-Key) of either kind answers the lease as it stands now.</summary>
public sealed class ReplayTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private LockClient Client => fixture.Client;

    public static TheoryData<string> Kinds() => new() { LeaseResource.Locks.Name, LeaseResource.Semaphores.Name };

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_replay_answers_what_remains_of_the_ttl_and_the_real_expiry_also_after_an_extend(string kind)
    {
        var resource = LeaseResource.All.Single(r => r.Name == kind);
        var key = Keys.Unique(nameof(A_replay_answers_what_remains_of_the_ttl_and_the_real_expiry_also_after_an_extend) + kind);
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "job-" + Guid.NewGuid().ToString("N") };
        var first = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key, "ttlMs=3000"), headers: headers);
        Assert.Equal(HttpStatusCode.Created, first.Status);
        var token = first.Json.GetProperty("token").GetString()!;

        // A second of the TTL gone by Redis's own count (looked at every few ms, so about 2 s of it are left for the rest).
        await RedisServer.WaitUntilAsync(
            async () => TtlOf(await resource.CheckAsync(Client, key, token)) <= 2_000, TimeSpan.FromSeconds(10), "a second of the TTL to pass");
        var before = await resource.CheckAsync(Client, key, token);
        var replay = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key, "ttlMs=3000"), headers: headers);
        var after = await resource.CheckAsync(Client, key, token);

        Assert.Equal(HttpStatusCode.Created, replay.Status);
        Assert.Equal(token, replay.Json.GetProperty("token").GetString());
        Assert.Equal(first.Json.GetProperty("fencingToken").GetInt64(), replay.Json.GetProperty("fencingToken").GetInt64());
        Assert.InRange(TtlOf(replay), TtlOf(after), TtlOf(before));
        AssertSameInstant(ExpiryOf(after), ExpiryOf(replay));

        var extended = await Client.SendAsync(HttpMethod.Patch, resource.Path(key, token) + "?ttlMs=20000");
        var afterExtend = await Client.SendAsync(HttpMethod.Post, resource.AcquirePath(key, "ttlMs=3000"), headers: headers);

        Assert.Equal(HttpStatusCode.OK, extended.Status);
        Assert.Equal(HttpStatusCode.Created, afterExtend.Status);
        Assert.InRange(TtlOf(afterExtend), 10_000, 20_000);
        AssertSameInstant(ExpiryOf(extended), ExpiryOf(afterExtend));
    }

    private static long TtlOf(Reply reply) => reply.Json.GetProperty("ttlMs").GetInt64();

    private static DateTimeOffset ExpiryOf(Reply reply) => reply.Json.GetProperty("expiresAt").GetDateTimeOffset();

    // Two answers computed from Redis's clock in two scripts: now plus what PTTL (or the permit's expiry) says, which may
    // round apart by a millisecond or two.
    private static void AssertSameInstant(DateTimeOffset expected, DateTimeOffset actual) =>
        Assert.True(Math.Abs((actual - expected).TotalMilliseconds) <= 5, $"expiresAt {actual:O}, the lease expires at {expected:O}");
}
