using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Semaphores;

/// <summary>
/// What every Redis topology must show of semaphores: one copy of the tests, run by each topology's test class
/// (<see cref="SemaphoreApiTests"/> on one Redis, <see cref="Scale.ClusterSemaphoreTests"/> on a Redis Cluster).
/// </summary>
public abstract class SemaphoreBehaviour : TopologyBehaviour
{
    [TopologyFact]
    public async Task A_permit_goes_through_acquire_inspect_check_extend_and_release_as_the_contract_says()
    {
        var key = Keys.Unique(nameof(A_permit_goes_through_acquire_inspect_check_extend_and_release_as_the_contract_says));

        var first = await Client.AcquirePermitAsync(key, "limit=2&ttlMs=30000&owner=job-a");
        var second = await Client.AcquirePermitOkAsync(key, "limit=2&ttlMs=20000");
        var full = await Client.AcquirePermitAsync(key, "limit=2");
        var inspected = await Client.InspectSemaphoreAsync(key);

        Assert.Equal(HttpStatusCode.Created, first.Status);
        var permit = first.Permit;
        Assert.Equal($"/semaphores/{key}/{permit.Token}", first.Headers.Location!.OriginalString);
        Assert.Equal(key, permit.Key);
        Assert.Matches("^[0-9a-f]{32}$", permit.Token);
        Assert.Equal((0, 2, 30_000L), (permit.Slot, permit.Limit, permit.TtlMs));
        Assert.Equal("job-a", permit.Json.GetProperty("owner").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, permit.Json.GetProperty("maxHoldMs").ValueKind);
        Assert.Equal(30_000, (permit.ExpiresAt - permit.Json.GetProperty("acquiredAt").GetDateTimeOffset()).TotalMilliseconds);
        Fences.AssertTimeBased(permit.FencingToken);
        Assert.Equal(1, second.Slot);

        var problem = full.AssertProblem(HttpStatusCode.Conflict, "semaphore_full");
        var retryAfterMs = problem.GetProperty("retryAfterMs").GetInt64();
        Assert.InRange(retryAfterMs, 10_000, 20_000);   // the earliest permit's expiry
        Assert.Equal(TimeSpan.FromSeconds(Math.Ceiling(retryAfterMs / 1000.0)), full.Headers.RetryAfter!.Delta);

        Assert.Equal(HttpStatusCode.OK, inspected.Status);
        Assert.Equal(2, inspected.Json.GetProperty("held").GetInt32());
        Assert.False(inspected.Json.GetProperty("truncated").GetBoolean());
        Assert.Equal([0, 1], inspected.Json.GetProperty("permits").EnumerateArray().Select(p => p.GetProperty("slot").GetInt32()));
        Assert.Equal(permit.FencingToken, inspected.Json.GetProperty("permits")[0].GetProperty("fencingToken").GetInt64());
        Assert.DoesNotContain(permit.Token, inspected.Body);
        Assert.DoesNotContain(second.Token, inspected.Body);

        var checkedOut = await Client.CheckPermitAsync(key, permit.Token);
        var extended = await Client.ExtendPermitAsync(key, permit.Token, "ttlMs=60000");
        Assert.Equal(HttpStatusCode.OK, checkedOut.Status);
        Assert.Equal((0, "job-a"), (checkedOut.Json.GetProperty("slot").GetInt32(), checkedOut.Json.GetProperty("owner").GetString()));
        Assert.DoesNotContain(permit.Token, checkedOut.Body);
        Assert.Equal(HttpStatusCode.OK, extended.Status);
        Assert.Equal((60_000L, permit.FencingToken, 0), (extended.Permit.TtlMs, extended.Permit.FencingToken, extended.Permit.Slot));

        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, second.Token)).Status);
        Assert.Equal("released", (await Client.ReleasePermitAsync(key, second.Token)).ReasonOf());
        Assert.Equal("released", (await Client.CheckPermitAsync(key, second.Token)).ReasonOf());
        Assert.Equal("released", (await Client.ExtendPermitAsync(key, second.Token)).ReasonOf());
        Assert.Equal(HttpStatusCode.NoContent, (await Client.ReleasePermitAsync(key, permit.Token)).Status);
        (await Client.InspectSemaphoreAsync(key)).AssertProblem(HttpStatusCode.NotFound, "semaphore_empty");
    }

    [TopologyFact]
    public async Task Never_more_than_limit_holders_and_never_two_in_one_slot_under_32_clients_on_two_instances_with_holders_that_vanish()
    {
        await using var a = new LockServiceFactory(RedisConnectionString, kestrel: true);
        await using var b = new LockServiceFactory(RedisConnectionString, kestrel: true);
        var clients = new[] { new LockClient(a.CreateClient()), new LockClient(b.CreateClient()) };
        const int limit = 4;
        var key = Keys.Unique("sem-mutex");
        var holds = new List<Hold>();
        var unexpected = new List<string>();

        // Both instances answer once (start-up, the OpenAPI document the checks read) before the clock starts.
        foreach (var client in clients)
        {
            await client.InspectSemaphoreAsync(key);
        }
        var deadline = Stopwatch.StartNew();

        var loops = Enumerable.Range(0, 32).Select(loop => Task.Run(async () =>
        {
            var client = clients[loop % 2];
            var random = new Random(loop);
            while (deadline.Elapsed < TimeSpan.FromSeconds(4))
            {
                // One holder in eight vanishes: it never releases, and its place must come free at its TTL.
                var vanish = random.Next(8) == 0;
                var reply = await client.AcquirePermitAsync(key, $"limit={limit}&ttlMs={(vanish ? 300 : 10_000)}&waitMs=5000");
                if (reply.Status != HttpStatusCode.Created)
                {
                    lock (unexpected)
                    {
                        unexpected.Add($"{(int)reply.Status} {reply.Body}");
                    }

                    continue;
                }

                // A hold runs from its acquiredAt (Redis's clock, this machine's) to its expiry for a holder that vanishes, or
                // to the moment its holder lets go (its DELETE leaves after that, so Redis frees the place later still).
                var permit = reply.Permit;
                var start = permit.Json.GetProperty("acquiredAt").GetDateTimeOffset();
                if (vanish)
                {
                    Record(new Hold(permit.Slot, permit.FencingToken, start, permit.ExpiresAt));
                    continue;
                }

                await Task.Delay(random.Next(1, 15));
                var now = DateTimeOffset.UtcNow;
                Record(new Hold(permit.Slot, permit.FencingToken, start, now.AddTicks(-(now.Ticks % TimeSpan.TicksPerMillisecond))));
                var release = await client.ReleasePermitAsync(key, permit.Token);
                if (release.Status != HttpStatusCode.NoContent)
                {
                    lock (unexpected)
                    {
                        unexpected.Add($"release: {(int)release.Status} {release.Body}");
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Empty(unexpected);
        Assert.True(holds.Count > 40, $"only {holds.Count} holds");
        Assert.All(holds, h => Assert.InRange(h.Slot, 0, limit - 1));
        HoldChecks.AssertNeverMoreThan(limit, holds);
        HoldChecks.AssertOneHolderPerSlotWithIncreasingFences(holds);

        void Record(Hold hold)
        {
            lock (holds)
            {
                holds.Add(hold);
            }
        }
    }

    [TopologyFact]
    public async Task Places_freed_through_one_instance_reach_as_many_waiters_on_both_instances_promptly()
    {
        var settings = LockServiceFactory.WithoutRecheck();
        await using var a = new LockServiceFactory(RedisConnectionString, settings, kestrel: true);
        await using var b = new LockServiceFactory(RedisConnectionString, settings, kestrel: true);
        var (clientA, clientB) = (new LockClient(a.CreateClient()), new LockClient(b.CreateClient()));
        var key = Keys.Unique(nameof(Places_freed_through_one_instance_reach_as_many_waiters_on_both_instances_promptly));
        var holders = new List<Permit>();
        for (var i = 0; i < 3; i++)
        {
            holders.Add(await clientA.AcquirePermitOkAsync(key, "limit=3&ttlMs=30000"));
        }

        var onA = clientA.AcquirePermitAsync(key, "limit=3&waitMs=8000");
        await a.WaitForSemaphoreWaitersAsync(1);
        var onB = new List<Task<Reply>>();
        for (var i = 0; i < 3; i++)
        {
            onB.Add(clientB.AcquirePermitAsync(key, "limit=3&waitMs=8000"));
            await b.WaitForSemaphoreWaitersAsync(i + 1);
        }

        var released = Stopwatch.StartNew();
        foreach (var holder in holders)
        {
            Assert.Equal(HttpStatusCode.NoContent, (await clientA.ReleasePermitAsync(key, holder.Token)).Status);
        }

        var answers = await Task.WhenAll(new[] { onA }.Concat(onB).Select(async waiter => (Reply: await waiter, At: released.Elapsed))).WaitAsync(TimeSpan.FromSeconds(30));

        // Three places, four waiters over two instances: three get in, and within 5 s, while the re-check is a minute away
        // and the TTLs 30 s, so only the notices of freed places let them in; the fourth waits out its 8 s. Within an
        // instance first come, first served: B's waiters get in in the order they came.
        var inside = answers.Where(a => a.Reply.Status == HttpStatusCode.Created).ToList();
        Assert.Equal(3, inside.Count);
        Assert.All(inside, a => Assert.True(a.At < TimeSpan.FromSeconds(5), $"a waiter got its place {a.At.TotalMilliseconds} ms after the first release"));
        Assert.Equal([0, 1, 2], inside.Select(a => a.Reply.Permit.Slot).Order());
        Assert.All(inside, a => Assert.True(a.Reply.Permit.FencingToken > holders[a.Reply.Permit.Slot].FencingToken, "fencing tokens increase per slot"));
        answers.Single(a => a.Reply.Status != HttpStatusCode.Created).Reply.AssertProblem(HttpStatusCode.Conflict, "semaphore_full");
        var servedOnB = answers.Skip(1).Select(a => a.Reply.Status == HttpStatusCode.Created).ToList();
        Assert.Equal(servedOnB.OrderByDescending(served => served), servedOnB);
    }
}

/// <summary>A recorded hold of a permit: its slot and fencing token, and when it was held (Redis's clock, in whole ms).</summary>
public sealed record Hold(int Slot, long FencingToken, DateTimeOffset Start, DateTimeOffset End);

/// <summary>Checks of recorded holds: how many at any instant, and one at a time per slot.</summary>
public static class HoldChecks
{
    /// <summary>Sweeps the holds' starts and ends in time order: at no instant are more than <paramref name="limit"/> held.</summary>
    public static void AssertNeverMoreThan(int limit, IReadOnlyCollection<Hold> holds)
    {
        // At equal times an end comes before a start: a place handed over at one instant is not two holders.
        var events = holds.SelectMany(h => new[] { (At: h.Start, Delta: 1), (At: h.End, Delta: -1) }).OrderBy(e => e.At).ThenBy(e => e.Delta);
        var (inside, most, when) = (0, 0, DateTimeOffset.MinValue);
        foreach (var (at, delta) in events)
        {
            inside += delta;
            if (inside > most)
            {
                (most, when) = (inside, at);
            }
        }

        Assert.True(most <= limit, $"{most} permits were held at {when:O}, with limit {limit}");
    }

    /// <summary>Per slot, the holds follow one another without overlap, with strictly increasing fencing tokens.</summary>
    public static void AssertOneHolderPerSlotWithIncreasingFences(IReadOnlyCollection<Hold> holds)
    {
        foreach (var slot in holds.GroupBy(h => h.Slot))
        {
            // Holds that start in one millisecond (let go of and taken again within it) are in the order of their fencing
            // tokens, Redis's microseconds; across milliseconds the start decides, and the tokens must follow it.
            var ordered = slot.OrderBy(h => h.Start).ThenBy(h => h.FencingToken).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                Assert.True(ordered[i].Start >= ordered[i - 1].End, $"slot {slot.Key}: a hold from {ordered[i].Start:O} began before the one before it ended at {ordered[i - 1].End:O}");
                Assert.True(ordered[i].FencingToken > ordered[i - 1].FencingToken, $"slot {slot.Key}: fencing token {ordered[i].FencingToken} after {ordered[i - 1].FencingToken}");
            }
        }
    }
}
