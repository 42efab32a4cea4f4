using System.Diagnostics;
using System.Net;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Faults;

/// <summary>
/// Two service instances on real Kestrel ports over one Redis, 16 clients looping acquire(wait) -> critical
/// section -> release on a few keys. A checker sees every critical section: no two overlap on a key, a
/// shared counter updated without any other protection loses no update, and fencing tokens increase.
/// </summary>
public sealed class MutualExclusionTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task Under_load_across_two_instances_no_two_holders_overlap_and_no_update_is_lost()
    {
        await using var a = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        await using var b = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var clients = new[] { new LockClient(a.CreateClient()), new LockClient(b.CreateClient()) };
        var keys = Enumerable.Range(0, 2).Select(i => Keys.Unique($"mutex-{i}")).ToArray();
        var sections = keys.ToDictionary(k => k, _ => new CriticalSection());
        var deadline = Stopwatch.StartNew();
        var unexpected = 0;

        var loops = Enumerable.Range(0, 16).Select(loop => Task.Run(async () =>
        {
            var client = clients[loop % 2];
            var key = keys[loop % keys.Length];
            while (deadline.Elapsed < TimeSpan.FromSeconds(4))
            {
                var reply = await client.AcquireAsync(key, "ttlMs=10000&waitMs=5000");
                if (reply.Status != HttpStatusCode.Created)
                {
                    Interlocked.Increment(ref unexpected);
                    continue;
                }

                var lease = reply.Lease;
                await sections[key].RunAsync(lease.FencingToken);
                if ((await client.ReleaseAsync(key, lease.Token)).Status != HttpStatusCode.NoContent)
                {
                    Interlocked.Increment(ref unexpected);
                }
            }
        })).ToArray();
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, unexpected);
        foreach (var section in sections.Values)
        {
            Assert.Equal(0, section.Overlaps);
            Assert.Equal(section.Entries, section.Counter);
            Assert.True(section.Entries > 20, $"only {section.Entries} acquisitions");
            Assert.Equal(section.Fences.Order(), section.Fences);
            Assert.Equal(section.Fences.Count, section.Fences.Distinct().Count());
        }
    }

    [Fact]
    public async Task A_holder_that_overstays_its_ttl_loses_the_lock_and_its_fencing_token_is_smaller()
    {
        var client = fixture.Client;
        var key = Keys.Unique(nameof(A_holder_that_overstays_its_ttl_loses_the_lock_and_its_fencing_token_is_smaller));
        var slow = await client.AcquireOkAsync(key, "ttlMs=200");

        // The next client was waiting; it gets the lock when the slow holder's TTL runs out.
        var next = await client.AcquireOkAsync(key, "waitMs=5000");

        Assert.True(next.FencingToken > slow.FencingToken);
        (await client.ExtendAsync(key, slow.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        (await client.ReleaseAsync(key, slow.Token)).AssertProblem(HttpStatusCode.NotFound, "lock_not_held");
        Assert.Equal(HttpStatusCode.OK, (await client.CheckAsync(key, next.Token)).Status);
    }

    /// <summary>What a protected resource would see: entries, overlaps, an unprotected counter and the fencing tokens.</summary>
    private sealed class CriticalSection
    {
        private int _inside;

        public int Entries;
        public int Overlaps;
        public int Counter;
        public List<long> Fences { get; } = [];

        public async Task RunAsync(long fence)
        {
            if (Interlocked.Exchange(ref _inside, 1) != 0)
            {
                Interlocked.Increment(ref Overlaps);
            }

            Interlocked.Increment(ref Entries);
            lock (Fences)
            {
                Fences.Add(fence);
            }

            // A read-modify-write with a yield in the middle: any second holder would lose an update.
            var value = Counter;
            await Task.Yield();
            Counter = value + 1;
            Volatile.Write(ref _inside, 0);
        }
    }
}
