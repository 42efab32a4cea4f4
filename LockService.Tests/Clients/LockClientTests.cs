using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Client;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using Lease = LockService.Client.Lease;
using LockClient = LockService.Client.LockClient;
using Permit = LockService.Client.Permit;
using PermitInfo = LockService.Client.PermitInfo;
using ReleaseResult = LockService.Client.ReleaseResult;

namespace LockService.Tests.Clients;

/// <summary>The .NET client library against the real service: typed results, typed errors, and the self-renewing handle.</summary>
public sealed class LockClientTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private LockClient Client => new(fixture.Factory.CreateClient());

    [Fact]
    public async Task TryAcquire_returns_the_lease_then_null_while_held_and_AcquireAsync_throws_LockHeld_with_retry_after()
    {
        var client = Client;
        var key = Keys.Unique(nameof(TryAcquire_returns_the_lease_then_null_while_held_and_AcquireAsync_throws_LockHeld_with_retry_after));

        var lease = await client.TryAcquireAsync(key, TimeSpan.FromSeconds(20), owner: "me", maxHold: TimeSpan.FromMinutes(1));
        Assert.NotNull(lease);
        Assert.Equal(key, lease.Key);
        Assert.Equal(32, lease.Token.Length);
        Fences.AssertTimeBased(lease.FencingToken);
        Assert.Equal(20_000, lease.TtlMs);
        Assert.Equal(60_000, lease.MaxHoldMs);
        Assert.Equal("me", lease.Owner);

        Assert.Null(await client.TryAcquireAsync(key));
        var held = await Assert.ThrowsAsync<LockHeldException>(() => client.AcquireAsync(key, wait: TimeSpan.FromMilliseconds(50)));
        Assert.InRange(held.RetryAfter!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(20));

        var info = await client.InspectAsync(key);
        Assert.Equal(lease.FencingToken, info!.FencingToken);
        Assert.Equal("me", info.Owner);
        Assert.True((await client.CheckAsync(key, lease.Token)).Held);

        var extended = await client.ExtendAsync(key, lease.Token, TimeSpan.FromSeconds(5));
        Assert.True(extended.Extended);
        Assert.Equal(5_000, extended.Lease.TtlMs);
        Assert.Equal(lease.FencingToken, extended.Lease.FencingToken);

        Assert.Equal(new ReleaseResult(true, null), await client.ReleaseAsync(key, lease.Token));
        Assert.Equal(new ReleaseResult(false, LeaseEndReason.Released), await client.ReleaseAsync(key, lease.Token));
        Assert.Equal(LeaseEndReason.Released, (await client.ExtendAsync(key, lease.Token)).EndReason);
        Assert.Equal(LeaseEndReason.Released, (await client.CheckAsync(key, lease.Token)).EndReason);
        Assert.Equal(LeaseEndReason.Unknown, (await client.CheckAsync(key, new string('a', 32))).EndReason);
        Assert.Null(await client.InspectAsync(key));
    }

    [Fact]
    public async Task Watch_answers_held_after_its_wait_and_ended_with_the_reason_at_once_on_a_force_release()
    {
        var client = Client;
        var key = Keys.Unique(nameof(Watch_answers_held_after_its_wait_and_ended_with_the_reason_at_once_on_a_force_release));
        var lease = (await client.TryAcquireAsync(key, TimeSpan.FromSeconds(20)))!;

        Assert.True((await client.WatchAsync(key, lease.Token, TimeSpan.FromMilliseconds(200))).Held);

        var watch = client.WatchAsync(key, lease.Token, TimeSpan.FromSeconds(20));
        Assert.True((await fixture.Factory.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
        var ended = await watch.WaitAsync(Bound);
        Assert.False(ended.Held);
        Assert.Equal(LeaseEndReason.Forced, ended.EndReason);
    }

    [Fact]
    public async Task Errors_are_typed_exceptions_bad_input_401_and_an_unreachable_service()
    {
        var client = Client;
        var bad = await Assert.ThrowsAsync<LockServiceException>(() => client.TryAcquireAsync("k", TimeSpan.FromMilliseconds(1)));
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Equal("invalid_parameter", bad.Code);
        Assert.Contains("ttlMs", bad.Errors.Keys);

        var key = await Assert.ThrowsAsync<LockServiceException>(() => client.InspectAsync(".dot"));
        Assert.Equal("invalid_key", key.Code);

        await using var secured = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0:Key"] = "client-key-0123456789",
            ["Auth:ApiKeys:0:Tenant"] = "t1",
        });
        var anonymous = new LockClient(secured.CreateClient());
        var denied = await Assert.ThrowsAsync<LockServiceAuthException>(() => anonymous.InspectAsync("k"));
        Assert.Equal(HttpStatusCode.Unauthorized, denied.Status);
        var http = secured.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", "client-key-0123456789");
        Assert.Null(await new LockClient(http).InspectAsync(Keys.Unique("secured")));

        var nowhere = LockClient.Create(new Uri($"http://127.0.0.1:{RedisServer.FreePort()}"));
        var unreachable = await Assert.ThrowsAsync<LockServiceUnavailableException>(() => nowhere.InspectAsync("k"));
        Assert.Null(unreachable.Status);
    }

    [Fact]
    public async Task A_handle_renews_past_its_ttl_exposes_its_tokens_and_releases_on_dispose_twice_safely()
    {
        var client = Client;
        var key = Keys.Unique(nameof(A_handle_renews_past_its_ttl_exposes_its_tokens_and_releases_on_dispose_twice_safely));
        // 2 s, renewed every 2/3 s: a loaded machine's pauses of a few hundred ms must not lose it.
        var handle = await client.AcquireAsync(key, TimeSpan.FromMilliseconds(2000));
        Assert.Equal(key, handle.Key);
        Fences.AssertTimeBased(handle.FencingToken);

        // Held for three TTLs: only renewals keep it.
        var held = Stopwatch.StartNew();
        while (held.Elapsed < TimeSpan.FromMilliseconds(6000))
        {
            Assert.True((await client.CheckAsync(key, handle.Token)).Held, $"lost after {held.ElapsedMilliseconds} ms");
            await Task.Delay(100);
        }

        Assert.False(handle.LostToken.IsCancellationRequested);
        await handle.DisposeAsync();
        Assert.Null(await client.InspectAsync(key));
        Assert.Equal(LeaseEndReason.Released, (await client.CheckAsync(key, handle.Token)).EndReason);
        await handle.DisposeAsync();
        Assert.Null(handle.LossReason);
    }

    [Theory]
    [InlineData("force", LeaseEndReason.Forced)]
    [InlineData("release", LeaseEndReason.Released)]
    [InlineData("hold-cap", LeaseEndReason.Expired)]
    public async Task A_handle_learns_of_a_loss_within_a_second_through_its_watch(string how, LeaseEndReason reason)
    {
        var client = Client;
        var key = Keys.Unique(nameof(A_handle_learns_of_a_loss_within_a_second_through_its_watch) + how);

        // A long TTL: renewals (every 10 s) cannot be what notices the loss; the watch must.
        await using var handle = how == "hold-cap"
            ? await client.AcquireAsync(key, TimeSpan.FromSeconds(1), maxHold: TimeSpan.FromMilliseconds(1500))
            : await client.AcquireAsync(key, TimeSpan.FromSeconds(30));
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.LostToken.Register(lost.SetResult);

        var since = Stopwatch.StartNew();
        if (how == "force")
        {
            await fixture.Factory.Engine().ForceReleaseAsync(LeaseName.Of(key));
        }
        else if (how == "release")
        {
            await client.ReleaseAsync(key, handle.Token);
        }

        await lost.Task.WaitAsync(Bound);
        Assert.Equal(reason, handle.LossReason);
        var expected = how == "hold-cap" ? TimeSpan.FromMilliseconds(2500) : TimeSpan.FromSeconds(1);
        Assert.True(since.Elapsed < expected, $"the loss was noticed after {since.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task A_handle_counts_the_lock_lost_unavailable_just_before_its_last_granted_expiry_when_the_service_is_gone()
    {
        var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = LockClient.Create(service.BaseAddress);
        var key = Keys.Unique(nameof(A_handle_counts_the_lock_lost_unavailable_just_before_its_last_granted_expiry_when_the_service_is_gone));
        await using var handle = await client.AcquireAsync(key, TimeSpan.FromSeconds(3));
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.LostToken.Register(lost.SetResult);

        var lastGrant = handle.Lease;
        var stopping = Stopwatch.StartNew();
        var stopped = service.DisposeAsync().AsTask();
        await lost.Task.WaitAsync(Bound);
        Assert.Equal(LeaseEndReason.Unavailable, handle.LossReason);

        // The lock was still its own when it gave up: before the last granted expiry (3 s after the last renewal at most).
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(3), $"gave up {stopping.ElapsedMilliseconds} ms after the service stopped");
        Assert.True(DateTimeOffset.UtcNow < handle.Lease.ExpiresAt.AddMilliseconds(200), $"gave up after the expiry {handle.Lease.ExpiresAt:O} (first {lastGrant.ExpiresAt:O})");
        await stopped.WaitAsync(TimeSpan.FromSeconds(40));
    }

    [Fact]
    public async Task A_handle_learns_of_a_force_release_within_a_second_when_the_services_MaxWaitMs_is_below_its_watch_wait()
    {
        // 5 s: below the 25 s a handle's watch asks for at first.
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Locks:MaxWaitMs"] = "5000" });
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_handle_learns_of_a_force_release_within_a_second_when_the_services_MaxWaitMs_is_below_its_watch_wait));

        // A long TTL: renewals (every 10 s) cannot be what notices the loss; the watch must.
        await using var handle = await client.AcquireAsync(key, TimeSpan.FromSeconds(30));
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.LostToken.Register(lost.SetResult);

        var since = Stopwatch.StartNew();
        Assert.True((await service.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
        await lost.Task.WaitAsync(Bound);
        Assert.Equal(LeaseEndReason.Forced, handle.LossReason);
        Assert.True(since.Elapsed < TimeSpan.FromSeconds(1), $"the loss was noticed after {since.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task A_handle_from_a_replayed_acquire_renews_before_the_original_expiry_and_then_every_third_of_the_ttl()
    {
        var patches = new RequestCounter(HttpMethod.Patch, fixture.Factory.Server.CreateHandler());
        var client = new LockClient(new HttpClient(patches) { BaseAddress = fixture.Factory.Server.BaseAddress });
        var key = Keys.Unique(nameof(A_handle_from_a_replayed_acquire_renews_before_the_original_expiry_and_then_every_third_of_the_ttl));
        var idempotencyKey = Guid.NewGuid().ToString("N");

        var first = (await client.TryAcquireAsync(key, TimeSpan.FromSeconds(3), idempotencyKey: idempotencyKey))!;
        var sinceFirst = Stopwatch.StartNew();
        // Not synchronization: the lease's age when its acquire is retried (as after a lost answer). 2.1 s, not 2: a delay
        // may end a millisecond early and Redis's clock is not this one, so what remains must be well inside 1 s.
        await Task.Delay(2100);

        await using var handle = await client.AcquireAsync(key, TimeSpan.FromSeconds(3), idempotencyKey: idempotencyKey);
        Assert.Equal(first.Token, handle.Token);
        Assert.InRange(handle.Lease.TtlMs, 1, 1000);

        // Past the original expiry (3 s after the first acquire): only a renewal timed by what remained keeps it.
        while (sinceFirst.Elapsed < TimeSpan.FromMilliseconds(3500))
        {
            Assert.True((await client.CheckAsync(key, handle.Token)).Held, $"lost {sinceFirst.ElapsedMilliseconds} ms after the first acquire ({handle.LossReason})");
            await Task.Delay(100);
        }

        // Renewed to the full TTL, the handle renews every second again, not every third of what the replay had left.
        var before = patches.Count;
        await Task.Delay(3000); // Not synchronization: the span whose renewals are counted.
        Assert.InRange(patches.Count - before, 2, 4);
        Assert.Null(handle.LossReason);
    }

    [Fact]
    public async Task A_handle_granted_after_waiting_longer_than_its_ttl_holds_and_renews_the_lock()
    {
        var client = Client;
        var key = Keys.Unique(nameof(A_handle_granted_after_waiting_longer_than_its_ttl_holds_and_renews_the_lock));
        var holder = (await client.TryAcquireAsync(key, TimeSpan.FromSeconds(30)))!;

        var waiting = client.AcquireAsync(key, TimeSpan.FromSeconds(2), wait: TimeSpan.FromSeconds(20));
        await fixture.Factory.WaitForWaitersAsync(1);
        await Task.Delay(2500); // Not synchronization: the wait, longer than the waiter's TTL, before the lock frees.
        await client.ReleaseAsync(key, holder.Token);
        await using var handle = await waiting.WaitAsync(Bound);

        // Held for two TTLs: the grant counts from when it came, not from when the request left.
        var held = Stopwatch.StartNew();
        while (held.Elapsed < TimeSpan.FromSeconds(4))
        {
            Assert.True((await client.CheckAsync(key, handle.Token)).Held, $"lost after {held.ElapsedMilliseconds} ms ({handle.LossReason})");
            await Task.Delay(100);
        }

        Assert.Null(handle.LossReason);
    }

    [Fact]
    public async Task A_success_that_is_not_json_is_unavailable_and_a_handle_rides_out_a_maintenance_page_shorter_than_its_ttl()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        await using var proxy = await MaintenanceProxy.StartAsync(service.BaseAddress);
        var client = LockClient.Create(proxy.BaseAddress);
        var key = Keys.Unique(nameof(A_success_that_is_not_json_is_unavailable_and_a_handle_rides_out_a_maintenance_page_shorter_than_its_ttl));

        proxy.Maintenance = true;
        proxy.MaintenanceStatus = 201;
        var page = await Assert.ThrowsAsync<LockServiceUnavailableException>(() => client.AcquireAsync(key, TimeSpan.FromSeconds(3)));
        Assert.Contains("text/html", page.Message, StringComparison.Ordinal);
        proxy.MaintenanceStatus = 200;
        await Assert.ThrowsAsync<LockServiceUnavailableException>(() => client.ExtendAsync(key, new string('a', 32)));

        proxy.Maintenance = false;
        await using var handle = await client.AcquireAsync(key, TimeSpan.FromSeconds(3));

        // A page for 1.5 s (renewals every second meet it), then the service again: the renewals go on.
        proxy.Maintenance = true;
        await RedisServer.WaitUntilAsync(() => Task.FromResult(proxy.PagesServed >= 3), Bound, "a renewal to meet the maintenance page");
        await Task.Delay(1000); // Not synchronization: how long the page stays, below what is left of the TTL.
        proxy.Maintenance = false;

        var held = Stopwatch.StartNew();
        while (held.Elapsed < TimeSpan.FromSeconds(5))
        {
            Assert.True((await client.CheckAsync(key, handle.Token)).Held, $"lost {held.ElapsedMilliseconds} ms after the page ended ({handle.LossReason})");
            await Task.Delay(100);
        }

        Assert.Null(handle.LossReason);

        // A page that stays: lost as when the service is unreachable, just before the last granted expiry.
        proxy.Maintenance = true;
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.LostToken.Register(lost.SetResult);
        await lost.Task.WaitAsync(Bound);
        Assert.Equal(LeaseEndReason.Unavailable, handle.LossReason);
        Assert.True(DateTimeOffset.UtcNow < handle.Lease.ExpiresAt.AddMilliseconds(200), $"gave up after the expiry {handle.Lease.ExpiresAt:O}");
    }

    [Fact]
    public async Task Permits_go_through_the_same_calls_with_slot_and_limit_and_a_full_semaphore_is_null_or_SemaphoreFull()
    {
        var client = Client;
        var key = Keys.Unique(nameof(Permits_go_through_the_same_calls_with_slot_and_limit_and_a_full_semaphore_is_null_or_SemaphoreFull));

        var first = await client.TryAcquirePermitAsync(key, 2, TimeSpan.FromSeconds(20), owner: "me");
        var second = await client.TryAcquirePermitAsync(key, 2, TimeSpan.FromSeconds(20));
        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Equal((0, 2, "me"), (first.Slot, first.Limit, first.Owner));
        Assert.Equal((1, 2), (second.Slot, second.Limit));
        Assert.Equal(32, first.Token.Length);
        Assert.Equal(20_000, first.TtlMs);

        Assert.Null(await client.TryAcquirePermitAsync(key, 2));
        var full = await Assert.ThrowsAsync<PermitsHeldException>(() => client.AcquirePermitAsync(key, 2, wait: TimeSpan.FromMilliseconds(50)));
        Assert.Equal(2, full.Limit);
        Assert.InRange(full.RetryAfter!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(20));

        var semaphore = await client.InspectSemaphoreAsync(key);
        Assert.Equal(2, semaphore!.Held);
        Assert.Equal([0, 1], semaphore.Permits.Select(p => p.Slot));
        Assert.Equal(first.FencingToken, semaphore.Permits[0].FencingToken);
        var check = await client.CheckPermitAsync(key, second.Token);
        Assert.Equal(1, Assert.IsType<PermitInfo>(check.Info).Slot);

        var extended = await client.ExtendPermitAsync(key, first.Token, TimeSpan.FromSeconds(5));
        Assert.Equal(5_000, extended.Lease!.TtlMs);
        Assert.Equal(first.FencingToken, Assert.IsType<Permit>(extended.Lease).FencingToken);

        Assert.Equal(new ReleaseResult(true, null), await client.ReleasePermitAsync(key, first.Token));
        Assert.Equal(new ReleaseResult(false, LeaseEndReason.Released), await client.ReleasePermitAsync(key, first.Token));
        Assert.Equal(LeaseEndReason.Released, (await client.CheckPermitAsync(key, first.Token)).EndReason);
        Assert.Equal(0, (await client.TryAcquirePermitAsync(key, 2))!.Slot);

        // A lock of the same name is another thing altogether.
        Assert.Null(await client.InspectAsync(key));
        Assert.Equal(LeaseEndReason.Unknown, (await client.CheckAsync(key, second.Token)).EndReason);
    }

    [Fact]
    public async Task A_permit_handle_renews_past_its_ttl_and_learns_of_its_slots_force_release_within_a_second()
    {
        var client = Client;
        var key = Keys.Unique(nameof(A_permit_handle_renews_past_its_ttl_and_learns_of_its_slots_force_release_within_a_second));
        await using var other = await client.AcquirePermitAsync(key, 2, TimeSpan.FromSeconds(30));
        await using var handle = await client.AcquirePermitAsync(key, 2, TimeSpan.FromMilliseconds(2000));
        Assert.Equal((1, 2, key), (handle.Slot, handle.Limit, handle.Key));
        Assert.Equal(handle.Permit, Assert.IsType<Permit>(handle.Lease));

        // Held for two TTLs: only renewals keep it, and each renewal is still a permit with its slot.
        var held = Stopwatch.StartNew();
        while (held.Elapsed < TimeSpan.FromMilliseconds(4000))
        {
            Assert.True((await client.CheckPermitAsync(key, handle.Token)).Held, $"lost after {held.ElapsedMilliseconds} ms");
            await Task.Delay(100);
        }

        Assert.Equal(1, handle.Slot);
        Assert.True(handle.Permit.ExpiresAt > DateTimeOffset.UtcNow);

        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.LostToken.Register(lost.SetResult);
        var since = Stopwatch.StartNew();
        Assert.True((await fixture.Factory.Semaphores().ForceReleaseAsync(LeaseName.Of(key), handle.Slot)).Released);
        await lost.Task.WaitAsync(Bound);
        Assert.Equal(LeaseEndReason.Forced, handle.LossReason);
        Assert.True(since.Elapsed < TimeSpan.FromSeconds(1), $"the loss was noticed after {since.ElapsedMilliseconds} ms");
        Assert.False(other.LostToken.IsCancellationRequested);

        await other.DisposeAsync();
        Assert.Null(await client.InspectSemaphoreAsync(key));
    }

    [Fact]
    public async Task ListSemaphores_gives_each_held_semaphore_with_its_permits_never_a_token_and_ListAll_follows_cursors_to_each_once()
    {
        var client = Client;
        var prefix = Keys.Unique(nameof(ListSemaphores_gives_each_held_semaphore_with_its_permits_never_a_token_and_ListAll_follows_cursors_to_each_once)) + "-";
        var (two, one) = (prefix + "two", prefix + "one");
        var permits = new[]
        {
            (await client.TryAcquirePermitAsync(two, 2, TimeSpan.FromSeconds(30), owner: "two-a"))!,
            (await client.TryAcquirePermitAsync(two, 2, TimeSpan.FromSeconds(30), owner: "two-b"))!,
            (await client.TryAcquirePermitAsync(one, 3, TimeSpan.FromSeconds(30), owner: "one-a"))!,
        };
        await client.TryAcquireAsync(prefix + "a-lock", TimeSpan.FromSeconds(30));

        var listed = await client.ListAllSemaphoresAsync(prefix).ToListAsync();

        Assert.Equal([one, two], listed.Select(s => s.Key).Order());
        foreach (var semaphore in listed)
        {
            var mine = permits.Where(p => p.Key == semaphore.Key).ToList();
            Assert.Equal((mine.Count, false), (semaphore.Held, semaphore.Truncated));
            Assert.Equal(
                mine.Select(p => (p.Slot, p.FencingToken, p.Limit, p.Owner)),
                semaphore.Permits.Select(p => (p.Slot, p.FencingToken, p.Limit, p.Owner)));
            Assert.All(semaphore.Permits, p => Assert.InRange(p.TtlMs, 1, 30_000));
        }

        var printed = JsonSerializer.Serialize(new SemaphorePage(listed, null), ClientJson.Default.SemaphorePage);
        Assert.All(permits, p => Assert.DoesNotContain(p.Token, printed, StringComparison.Ordinal));

        // One semaphore a page at most: the cursors lead to both, and ListAll gives each key once however many pages.
        var pages = new List<SemaphorePage>();
        string? cursor = null;
        do
        {
            pages.Add(await client.ListSemaphoresAsync(prefix, limit: 1, cursor));
            cursor = pages[^1].Cursor;
            Assert.True(pages.Count < 10_000, "the listing does not end");
        }
        while (cursor is not null);

        Assert.All(pages, page => Assert.InRange(page.Semaphores.Count, 0, 1));
        Assert.Equal([one, two], pages.SelectMany(p => p.Semaphores).Select(s => s.Key).Distinct().Order());
        Assert.Equal([one, two], (await client.ListAllSemaphoresAsync(prefix, pageSize: 1).ToListAsync()).Select(s => s.Key).Order());
    }

    [Fact]
    public async Task ListAll_waits_out_a_429_and_goes_on_from_the_same_cursor_to_every_lock()
    {
        var prefix = Keys.Unique(nameof(ListAll_waits_out_a_429_and_goes_on_from_the_same_cursor_to_every_lock)) + "-";
        string[] keys = [prefix + "a", prefix + "b", prefix + "c"];
        foreach (var key in keys)
        {
            Assert.NotNull(await Client.TryAcquireAsync(key, TimeSpan.FromSeconds(60)));
        }

        // One request a second and a page of one lock: the walk meets the limit by its second page.
        await using var limited = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["RateLimit:PermitsPerSecond"] = "1" });
        var answers = new StatusRecorder();
        var client = new LockClient(limited.CreateDefaultClient(answers));

        var listed = await client.ListAllAsync(prefix, pageSize: 1).ToListAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(keys, listed.Select(l => l.Key).Order());
        Assert.Contains(HttpStatusCode.TooManyRequests, answers.Statuses);
        Assert.Equal(HttpStatusCode.OK, answers.Statuses.Last());
    }

    /// <summary>The status of every answer that passes through the client.</summary>
    private sealed class StatusRecorder : DelegatingHandler
    {
        public System.Collections.Concurrent.ConcurrentQueue<HttpStatusCode> Statuses { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            Statuses.Enqueue(response.StatusCode);
            return response;
        }
    }
}

/// <summary>Counts the requests of one method that go through it (the renewals of a handle: PATCH).</summary>
internal sealed class RequestCounter(HttpMethod method, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Method == method)
        {
            Interlocked.Increment(ref _count);
        }

        return base.SendAsync(request, cancellationToken);
    }
}
