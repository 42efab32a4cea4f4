using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.RwLocks;

/// <summary>The service over the shared Redis with force-release open (authentication off), as an operator would use it.</summary>
public sealed class RwLockApiFixture : ApiFixture
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Operators:AllowForceReleaseWithoutAuth"] = "true" };
}

/// <summary>The read/write lock API on one Redis: the shared behaviour, and what the contract adds for HTTP clients.</summary>
public sealed class RwLockApiTests(RwLockApiFixture fixture) : RwLockBehaviour, IClassFixture<RwLockApiFixture>
{
    protected override LockClient Client => fixture.Client;

    protected override string RedisConnectionString => fixture.Redis.ConnectionString;

    [Theory]
    [InlineData("", null, "is required")]
    [InlineData("ttlMs=5000", null, "is required")]
    [InlineData("mode=", null, "read or write")]
    [InlineData("mode=READ", null, "read or write")]
    [InlineData("mode=upgrade", null, "read or write")]
    [InlineData("mode=read&mode=write", null, "give it once")]
    [InlineData("mode=read", """{"mode":"write"}""", "both in the query and in the body")]
    [InlineData("", """{"mode":null}""", "is required")]
    [InlineData("", """{"mode":1}""", "must be a string")]
    public async Task A_mode_that_is_missing_null_twice_or_neither_read_nor_write_is_400_naming_mode_and_takes_nothing(string query, string? body, string message)
    {
        var key = Keys.Unique("rw-bad-mode");

        var reply = await Client.SendAsync(HttpMethod.Post, $"/rwlocks/{key}?{query}", body);

        var problem = reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        Assert.Contains(message, string.Join(" ", problem.GetProperty("errors").GetProperty("mode").EnumerateArray().Select(e => e.GetString())));
        (await Client.InspectRwAsync(key)).AssertProblem(HttpStatusCode.NotFound, "rwlock_free");
    }

    [Fact]
    public async Task A_body_takes_the_mode_and_a_retry_with_the_same_idempotency_key_gets_the_same_lease_in_its_own_mode()
    {
        var key = Keys.Unique(nameof(A_body_takes_the_mode_and_a_retry_with_the_same_idempotency_key_gets_the_same_lease_in_its_own_mode));
        var headers = new Dictionary<string, string> { ["Idempotency-Key"] = "job-7" };

        var first = await Client.SendAsync(HttpMethod.Post, $"/rwlocks/{key}", """{"mode":"write","ttlMs":30000}""", headers: headers);
        var retry = await Client.SendAsync(HttpMethod.Post, $"/rwlocks/{key}", """{"mode":"read","ttlMs":5000}""", headers: headers);

        Assert.Equal(HttpStatusCode.Created, first.Status);
        Assert.Equal(HttpStatusCode.Created, retry.Status);
        Assert.Equal((first.Lease.Token, first.Lease.FencingToken, "write"), (retry.Lease.Token, retry.Lease.FencingToken, retry.Json.GetProperty("mode").GetString()));
        Assert.InRange(retry.Lease.TtlMs, 25_000, 30_000);
    }

    [Fact]
    public async Task Every_reason_reaches_the_holder_released_forced_expired_and_unknown_and_a_watch_hears_the_force_at_once()
    {
        var key = Keys.Unique(nameof(Every_reason_reaches_the_holder_released_forced_expired_and_unknown_and_a_watch_hears_the_force_at_once));
        var released = await Client.AcquireRwOkAsync(key, "mode=read");
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleaseRwAsync(key, released.Token)).Status);
        var forced = await Client.AcquireRwOkAsync(key, "mode=write");
        var watch = Client.CheckRwAsync(key, forced.Token, "waitMs=20000");
        await Task.Delay(200);
        var forcedAt = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}")).Status);
        var heard = await watch.WaitAsync(TimeSpan.FromSeconds(10));
        var expired = await Client.AcquireRwOkAsync(key, "mode=read&ttlMs=100");
        var deadline = Stopwatch.StartNew();
        while ((await Client.CheckRwAsync(key, expired.Token)).Status == HttpStatusCode.OK && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        Assert.Equal("forced", heard.RwReasonOf());
        Assert.True(forcedAt.Elapsed < TimeSpan.FromSeconds(1), $"the watch heard it {forcedAt.ElapsedMilliseconds} ms after the force");
        Assert.Equal("released", (await Client.CheckRwAsync(key, released.Token)).RwReasonOf());
        Assert.Equal("forced", (await Client.ExtendRwAsync(key, forced.Token)).RwReasonOf());
        Assert.Equal("expired", (await Client.ReleaseRwAsync(key, expired.Token)).RwReasonOf());
        Assert.Equal("unknown", (await Client.CheckRwAsync(key, "0123456789abcdef0123456789abcdef")).RwReasonOf());
    }

    [Fact]
    public async Task Operators_list_read_write_locks_and_force_release_one_lease_by_its_fencing_token_or_every_lease()
    {
        var key = Keys.Unique(nameof(Operators_list_read_write_locks_and_force_release_one_lease_by_its_fencing_token_or_every_lease));
        var owners = new[] { "audit-" + Guid.NewGuid().ToString("N")[..12], "audit-" + Guid.NewGuid().ToString("N")[..12] };
        var readers = new[] { await Client.AcquireRwOkAsync(key, "mode=read&owner=" + owners[0]), await Client.AcquireRwOkAsync(key, "mode=read&owner=" + owners[1]) };

        var listing = await Client.SendAsync(HttpMethod.Get, $"/admin/rwlocks?prefix={key}");
        var badFence = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}?fencingToken=12x");
        var unknownParameter = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}?fence=1");
        var noSuchFence = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}?fencingToken=1");
        var one = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}?fencingToken={readers[0].FencingToken}");
        var afterOne = await Client.InspectRwAsync(key);
        var all = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}");
        var none = await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}");

        Assert.Equal(HttpStatusCode.OK, listing.Status);
        var listed = Assert.Single(listing.Json.GetProperty("rwlocks").EnumerateArray());
        Assert.Equal((key, "read", 2), (listed.GetProperty("key").GetString(), listed.GetProperty("mode").GetString(), listed.GetProperty("holders").GetArrayLength()));
        Assert.Equal(JsonValueKind.Null, listing.Json.GetProperty("cursor").ValueKind);
        Assert.DoesNotContain(readers[0].Token, listing.Body);
        Assert.True(badFence.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter").GetProperty("errors").TryGetProperty("fencingToken", out _));
        Assert.True(unknownParameter.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter").GetProperty("errors").TryGetProperty("fence", out _));
        noSuchFence.AssertProblem(HttpStatusCode.NotFound, "rwlock_not_held");
        Assert.Equal(HttpStatusCode.NoContent, one.Status);
        Assert.Equal(readers[1].FencingToken, Assert.Single(afterOne.Json.GetProperty("holders").EnumerateArray()).GetProperty("fencingToken").GetInt64());
        Assert.Equal(HttpStatusCode.NoContent, all.Status);
        none.AssertProblem(HttpStatusCode.NotFound, "rwlock_not_held");
        Assert.Equal("forced", (await Client.CheckRwAsync(key, readers[0].Token)).RwReasonOf());
        Assert.Equal("forced", (await Client.CheckRwAsync(key, readers[1].Token)).RwReasonOf());
        foreach (var owner in owners)
        {
            await RedisServer.WaitUntilAsync(
                () => Task.FromResult(fixture.Factory.Log.Lines.Any(l => l.Contains("RwLeaseForceReleased", StringComparison.Ordinal) && l.Contains(owner, StringComparison.Ordinal))),
                TimeSpan.FromSeconds(5),
                "an audit event per lease");
        }

        Assert.DoesNotContain(fixture.Factory.Log.Lines, l => l.Contains(readers[0].Token, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task A_key_of_another_type_is_a_503_naming_it_for_every_operation_and_never_a_500(int index)
    {
        var key = Keys.Unique($"rw-wrongtype-{index}");
        var wrong = (string)LockService.Core.RwLocks.RwLockKeys.For("rw:", LockService.Core.Leases.LeaseName.Of(key)).All[index]!;
        await fixture.Redis.Redis.GetDatabase().ListRightPushAsync(wrong, "not a read/write lock");

        var answers = new[]
        {
            await Client.AcquireRwAsync(key, "mode=write"),
            await Client.AcquireRwAsync(key, "mode=read&owner=me&maxHoldMs=60000&waitMs=200"),
            await Client.ExtendRwAsync(key, "0123456789abcdef0123456789abcdef"),
        };

        foreach (var answer in answers)
        {
            Assert.Contains(wrong, answer.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_data_invalid").GetProperty("detail").GetString());
        }

        if (index != 2)
        {
            // The fencing key is touched only where a lease is granted or extended.
            foreach (var answer in new[]
            {
                await Client.ReleaseRwAsync(key, "0123456789abcdef0123456789abcdef"),
                await Client.CheckRwAsync(key, "0123456789abcdef0123456789abcdef"),
                await Client.SendAsync(HttpMethod.Delete, $"/admin/rwlocks/{key}"),
            })
            {
                answer.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_data_invalid");
            }
        }
    }

    [Fact]
    public async Task Metrics_count_read_write_lock_outcomes_under_their_own_kind_a_refusal_as_held()
    {
        var key = Keys.Unique(nameof(Metrics_count_read_write_lock_outcomes_under_their_own_kind_a_refusal_as_held));
        const string Acquired = "lockservice_operations_total{kind=\"rwlock\",operation=\"acquire\",outcome=\"acquired\"}";
        const string Held = "lockservice_operations_total{kind=\"rwlock\",operation=\"acquire\",outcome=\"held\"}";
        var before = await MetricsAsync();

        var reader = await Client.AcquireRwOkAsync(key, "mode=read");
        await Client.AcquireRwAsync(key, "mode=write");
        await Client.ReleaseRwAsync(key, reader.Token);
        var after = await MetricsAsync();

        Assert.True(after[Acquired] >= before[Acquired] + 1, "acquired");
        Assert.True(after[Held] >= before[Held] + 1, "held");
        Assert.True(after.ContainsKey("lockservice_rwlock_hold_duration_seconds_count"));
    }

    private async Task<Dictionary<string, double>> MetricsAsync()
    {
        var text = (await Client.SendAsync(HttpMethod.Get, "/metrics")).Body;
        return text.Split('\n').Where(l => l.StartsWith("lockservice_", StringComparison.Ordinal))
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task A_lease_held_by_a_stream_says_its_mode_and_is_released_when_the_stream_closes()
    {
        var key = Keys.Unique(nameof(A_lease_held_by_a_stream_says_its_mode_and_is_released_when_the_stream_closes));
        var events = await LeaseEvents.OpenAsync(fixture.Factory.CreateClient(), key, "mode=write&ttlMs=3000", resource: "rwlocks");
        string token;
        await using (events)
        {
            Assert.Equal(HttpStatusCode.OK, events.Status);
            var (name, data) = await events.NextEventAsync();
            var lease = JsonDocument.Parse(data).RootElement;
            Assert.Equal(("acquired", "write"), (name, lease.GetProperty("mode").GetString()));
            token = lease.GetProperty("token").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await Client.CheckRwAsync(key, token)).Status);
        }

        var deadline = Stopwatch.StartNew();
        while ((await Client.CheckRwAsync(key, token)).Status == HttpStatusCode.OK && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        Assert.Equal("released", (await Client.CheckRwAsync(key, token)).RwReasonOf());
    }

    [Fact]
    public async Task A_waiting_writer_whose_client_hangs_up_lets_the_readers_it_held_back_in_at_once()
    {
        var key = Keys.Unique(nameof(A_waiting_writer_whose_client_hangs_up_lets_the_readers_it_held_back_in_at_once));
        await Client.AcquireRwOkAsync(key, "mode=read");
        using var hangUp = new CancellationTokenSource();
        var writer = Client.AcquireRwAsync(key, "mode=write&waitMs=30000", hangUp.Token);
        await UntilAsync(async () => (await Client.InspectRwAsync(key)).Json.GetProperty("writersWaiting").GetInt32() == 1, "the writer waits");
        var reader = Client.AcquireRwAsync(key, "mode=read&waitMs=20000");
        await Task.Delay(200);
        Assert.False(reader.IsCompleted, "a reader got in while a writer waited");

        var gone = Stopwatch.StartNew();
        await hangUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => writer);
        var granted = await reader.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(HttpStatusCode.Created, granted.Status);
        Assert.True(gone.Elapsed < TimeSpan.FromSeconds(1), $"the reader got in {gone.ElapsedMilliseconds} ms after the writer's client hung up");
        Assert.Equal(0, (await Client.InspectRwAsync(key)).Json.GetProperty("writersWaiting").GetInt32());
    }

    [Fact]
    public async Task A_waiting_writer_on_an_instance_that_is_killed_holds_readers_back_no_longer_than_2_seconds()
    {
        var key = Keys.Unique(nameof(A_waiting_writer_on_an_instance_that_is_killed_holds_readers_back_no_longer_than_2_seconds));
        var port = RedisServer.FreePort();
        var doomed = ServiceProcess.Start(
            new Dictionary<string, string> { ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}" },
            $"--Redis:ConnectionString={fixture.Redis.ConnectionString}");
        await using var stopped = new Stopper(doomed);
        var other = new LockClient(new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) });
        await UntilAsync(async () =>
        {
            try
            {
                return (await other.SendAsync(HttpMethod.Get, "/health/ready")).Status == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, "the second instance is ready", TimeSpan.FromSeconds(60));
        await Client.AcquireRwOkAsync(key, "mode=read");
        _ = other.AcquireRwAsync(key, "mode=write&waitMs=60000").ContinueWith(t => t.Exception, TaskScheduler.Default);
        await UntilAsync(async () => (await Client.InspectRwAsync(key)).Json.GetProperty("writersWaiting").GetInt32() == 1, "the writer waits on the other instance");

        await stopped.KillAsync();
        var killed = Stopwatch.StartNew();
        var reader = await Client.AcquireRwAsync(key, "mode=read&waitMs=10000");

        Assert.Equal(HttpStatusCode.Created, reader.Status);
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(2), $"the reader got in {killed.ElapsedMilliseconds} ms after the writer's instance was killed");
    }

    // Kills the process once, whether the test gets to it or fails before.
    private sealed class Stopper(ServiceProcess process) : IAsyncDisposable
    {
        private bool _killed;

        public async Task KillAsync()
        {
            _killed = true;
            await process.DisposeAsync();
        }

        public async ValueTask DisposeAsync()
        {
            if (!_killed)
            {
                await KillAsync();
            }
        }
    }

    private static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? within = null)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < (within ?? TimeSpan.FromSeconds(10)), $"not within the bound: {what}");
            await Task.Delay(20);
        }
    }
}
