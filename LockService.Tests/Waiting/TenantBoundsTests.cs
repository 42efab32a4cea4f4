using System.Net;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Waiting;

/// <summary>
/// One tenant cannot starve another: with authentication on, each tenant has a share of an instance's waiting requests,
/// watches and streams (by default half of each bound), and a tenant at its share gets 429 while the others still get in.
/// </summary>
public sealed class TenantBoundsTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private const string KeyOfA = "tenant-a-key-0123456789abcdef";
    private const string KeyOfB = "tenant-b-key-0123456789abcdef";

    public static TheoryData<string> Kinds() => new() { LeaseResource.Locks.Name, LeaseResource.Semaphores.Name };

    // Bounds of 4, so each tenant's share is 2.
    private static Dictionary<string, string?> Settings() => new()
    {
        ["Auth:ApiKeys:0:Key"] = KeyOfA,
        ["Auth:ApiKeys:0:Tenant"] = "a",
        ["Auth:ApiKeys:1:Key"] = KeyOfB,
        ["Auth:ApiKeys:1:Tenant"] = "b",
        ["Locks:MaxWaiters"] = "4",
        ["Locks:MaxWatchers"] = "4",
        ["Locks:MaxStreams"] = "4",
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_tenant_at_its_share_of_waiters_gets_429_while_another_still_waits(string kind)
    {
        await using var t = await TwoTenantsHoldingAsync(kind, nameof(A_tenant_at_its_share_of_waiters_gets_429_while_another_still_waits));
        var waitPath = t.Resource.AcquirePath(t.Key, "waitMs=20000&ttlMs=1000");
        var waitingOfA = new[] { t.A.SendAsync(HttpMethod.Post, waitPath), t.A.SendAsync(HttpMethod.Post, waitPath) };
        await WaitForAsync(() => Waiting(t.Service) == 2, "a's two requests to wait");

        var refused = await t.A.SendAsync(HttpMethod.Post, waitPath);
        var waitingOfB = t.B.SendAsync(HttpMethod.Post, waitPath);
        await WaitForAsync(() => Waiting(t.Service) == 3, "b's request to wait");

        AssertTenantShare(refused, "Locks:MaxWaiters");
        await t.ReleaseAsync(t.B, t.HeldByB);
        Assert.Equal(HttpStatusCode.Created, (await waitingOfB.WaitAsync(TimeSpan.FromSeconds(10))).Status);
        await t.ReleaseAsync(t.A, t.HeldByA);
        Assert.All(await Task.WhenAll(waitingOfA).WaitAsync(TimeSpan.FromSeconds(20)), r => Assert.Equal(HttpStatusCode.Created, r.Status));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_tenant_at_its_share_of_watches_gets_429_while_another_still_watches(string kind)
    {
        await using var t = await TwoTenantsHoldingAsync(kind, nameof(A_tenant_at_its_share_of_watches_gets_429_while_another_still_watches));
        var watchOfA = t.Resource.Path(t.Key, t.HeldByA.Token) + "?waitMs=20000";
        var watchesOfA = new[] { t.A.SendAsync(HttpMethod.Get, watchOfA), t.A.SendAsync(HttpMethod.Get, watchOfA) };
        await WaitForAsync(() => Watching(t.Service) == 2, "a's two watches to be open");

        var refused = await t.A.SendAsync(HttpMethod.Get, watchOfA);
        var watchOfB = t.B.SendAsync(HttpMethod.Get, t.Resource.Path(t.Key, t.HeldByB.Token) + "?waitMs=20000");
        await WaitForAsync(() => Watching(t.Service) == 3, "b's watch to be open");

        AssertTenantShare(refused, "Locks:MaxWatchers");
        await t.ReleaseAsync(t.B, t.HeldByB);
        (await watchOfB.WaitAsync(TimeSpan.FromSeconds(10))).AssertProblem(HttpStatusCode.NotFound, t.Resource.NotHeldCode);
        await t.ReleaseAsync(t.A, t.HeldByA);
        Assert.All(await Task.WhenAll(watchesOfA).WaitAsync(TimeSpan.FromSeconds(10)), r => r.AssertProblem(HttpStatusCode.NotFound, t.Resource.NotHeldCode));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_tenant_at_its_share_of_streams_gets_429_and_acquires_nothing_while_another_still_streams(string kind)
    {
        var resource = LeaseResource.All.Single(r => r.Name == kind);
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, Settings(), kestrel: true);
        var a = As(service, KeyOfA);
        using var streamsOfA = StreamClient(service, KeyOfA);
        using var streamsOfB = StreamClient(service, KeyOfB);
        var key = Keys.Unique(nameof(A_tenant_at_its_share_of_streams_gets_429_and_acquires_nothing_while_another_still_streams) + kind);
        var first = await OpenAsync(streamsOfA, resource, key + "-1");
        await using (var second = await OpenAsync(streamsOfA, resource, key + "-2"))
        {
            var refused = await a.SendAsync(HttpMethod.Post, resource.AcquirePath(key + "-3", "ttlMs=3000"), headers: new Dictionary<string, string> { ["Accept"] = "text/event-stream" });

            AssertTenantShare(refused, "Locks:MaxStreams");
            await resource.AssertFreeAsync(a, key + "-3");
            await using var ofB = await OpenAsync(streamsOfB, resource, key + "-3");
        }

        // A stream that ends gives its place back.
        await first.DisposeAsync();
        await WaitForAsync(() => service.Services.GetRequiredService<WaitBounds>().Streams == 0, "the streams to end");
        await using var again = await OpenAsync(streamsOfA, resource, key + "-4");
    }

    [Fact]
    public async Task Past_MaxStreams_a_stream_gets_429_and_acquires_nothing()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Locks:MaxStreams"] = "1" }, kestrel: true);
        var client = new LockClient(service.CreateClient());
        using var streams = LeaseEvents.ClientFor(service.BaseAddress);
        var key = Keys.Unique(nameof(Past_MaxStreams_a_stream_gets_429_and_acquires_nothing));
        await using var open = await OpenAsync(streams, LeaseResource.Locks, key + "-1");

        var refused = await client.SendAsync(HttpMethod.Post, $"/locks/{key}-2?ttlMs=3000", headers: new Dictionary<string, string> { ["Accept"] = "text/event-stream" });

        var problem = refused.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.Contains("This instance already has 1 lease-holding streams open (Locks:MaxStreams)", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter!.Delta);
        (await client.InspectAsync(key + "-2")).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
    }

    // A service with bounds of 4, and a lease of the kind held by each tenant under one name (two leases: each tenant's
    // names are its own).
    private async Task<TwoTenants> TwoTenantsHoldingAsync(string kind, string test)
    {
        var resource = LeaseResource.All.Single(r => r.Name == kind);
        var service = new LockServiceFactory(fixture.Redis.ConnectionString, Settings());
        var (a, b) = (As(service, KeyOfA), As(service, KeyOfB));
        var key = Keys.Unique(test + kind);
        return new TwoTenants(resource, service, a, b, key, await resource.HoldAsync(a, key), await resource.HoldAsync(b, key));
    }

    private static void AssertTenantShare(Reply refused, string bound)
    {
        var problem = refused.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_requests");
        Assert.Contains($"its share of {bound} (Locks:MaxWaitersPerTenant)", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter!.Delta);
    }

    private static LockClient As(LockServiceFactory service, string apiKey)
    {
        var http = service.CreateClient();
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        return new LockClient(http);
    }

    private static HttpClient StreamClient(LockServiceFactory service, string apiKey)
    {
        var http = LeaseEvents.ClientFor(service.BaseAddress);
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        return http;
    }

    // A stream that got its lease: 200 and 'event: acquired'.
    private static async Task<LeaseEvents> OpenAsync(HttpClient http, LeaseResource resource, string key)
    {
        var stream = await LeaseEvents.OpenAsync(http, key, resource.AcquirePath(key, "ttlMs=3000").Split('?')[1], resource.Name);
        Assert.Equal(HttpStatusCode.OK, stream.Status);
        Assert.Equal("acquired", (await stream.NextEventAsync()).Name);
        return stream;
    }

    private static int Waiting(LockServiceFactory service) => service.Leases().WaitingCount;

    private static int Watching(LockServiceFactory service) => service.Leases().WatchingCount;

    private static Task WaitForAsync(Func<bool> condition, string what) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(condition()), TimeSpan.FromSeconds(10), what);
}

internal sealed record TwoTenants(LeaseResource Resource, LockServiceFactory Service, LockClient A, LockClient B, string Key, Canary HeldByA, Canary HeldByB) : IAsyncDisposable
{
    public async Task ReleaseAsync(LockClient client, Canary held) =>
        Assert.Equal(HttpStatusCode.NoContent, (await client.SendAsync(HttpMethod.Delete, Resource.Path(Key, held.Token))).Status);

    public ValueTask DisposeAsync() => Service.DisposeAsync();
}
