using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Elections;

/// <summary>
/// What every Redis topology must show of elections across two service instances on real Kestrel ports: one copy of the
/// tests, run on one Redis (<see cref="ElectionTwoInstanceTests"/>) and on a Redis Cluster (<see cref="ClusterElectionTests"/>).
/// </summary>
public abstract class ElectionBehaviour : TopologyBehaviour, IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private LockServiceFactory? _one;
    private LockServiceFactory? _two;

    protected LockServiceFactory One => _one!;

    protected LockServiceFactory Two => _two!;

    public virtual Task InitializeAsync()
    {
        // Without the heads' 1 s re-check, a hand-over that the notices missed would show as a slow one; force is allowed;
        // a loaded machine starting a cluster beside these instances must not turn a slow script into a 503.
        var settings = LockServiceFactory.WithoutRecheck();
        settings["Redis:TimeoutMs"] = "5000";
        settings["Operators:AllowForceReleaseWithoutAuth"] = "true";
        _one = new LockServiceFactory(RedisConnectionString, settings, kestrel: true);
        _two = new LockServiceFactory(RedisConnectionString, settings, kestrel: true);
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        await (_one?.DisposeAsync() ?? ValueTask.CompletedTask);
        await (_two?.DisposeAsync() ?? ValueTask.CompletedTask);
    }

    [TopologyFact]
    public async Task A_leaders_stream_closes_and_a_candidate_on_the_other_instance_leads_within_ms_and_observers_on_both_see_it()
    {
        var name = Keys.Unique(nameof(A_leaders_stream_closes_and_a_candidate_on_the_other_instance_leads_within_ms_and_observers_on_both_see_it));
        using var oneHttp = LeaseEvents.ClientFor(One.BaseAddress);
        using var twoHttp = LeaseEvents.ClientFor(Two.BaseAddress);
        var twoClient = new LockClient(twoHttp);

        var stream = await LeaseEvents.OpenAsync(oneHttp, name, "ttlMs=5000&value=first", "elections");
        Assert.Equal(HttpStatusCode.OK, stream.Status);
        var (acquired, data) = await stream.NextEventAsync();
        Assert.Equal("acquired", acquired);
        var firstTerm = JsonDocument.Parse(data).RootElement.GetProperty("term").GetInt64();
        await using var onOne = await ElectionEvents.OpenAsync(oneHttp, name);
        await using var onTwo = await ElectionEvents.OpenAsync(twoHttp, name);
        await onOne.WaitForAsync(e => e.Term == firstTerm, "instance one's observer to see the stream's term");
        await onTwo.WaitForAsync(e => e.Term == firstTerm, "instance two's observer to see the stream's term");

        var waiting = twoClient.SendAsync(HttpMethod.Post, $"/elections/{name}?waitMs=30000&value=second");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(Two.Leases().WaitingCount > 0), Deadline, "the candidate to wait on instance two");
        var closed = Stopwatch.GetTimestamp();
        await stream.DisposeAsync();

        var next = await waiting.WaitAsync(Deadline);
        var handover = Stopwatch.GetElapsedTime(closed);
        Assert.Equal(HttpStatusCode.Created, next.Status);
        var secondTerm = next.Json.GetProperty("term").GetInt64();
        Assert.True(secondTerm > firstTerm);

        // Both observers end on the new leader (they may or may not have seen the moment with no leader between).
        var seenOnOne = await onOne.WaitForLastAsync(e => e.Term == secondTerm, "instance one's observer to end on the new term");
        var seenOnTwo = await onTwo.WaitForLastAsync(e => e.Term == secondTerm, "instance two's observer to end on the new term");
        Assert.Equal("second", seenOnOne.Value);
        Assert.Equal(seenOnOne.Id, seenOnTwo.Id);

        // Milliseconds, not a poll period or a TTL: a bound a loaded test machine keeps (the measured figure is in docs/performance.md).
        Assert.True(handover < TimeSpan.FromSeconds(2), $"the candidate led {handover.TotalMilliseconds:0} ms after the stream closed");
    }

    [TopologyFact]
    public async Task A_proclaim_on_one_instance_is_seen_by_observers_of_the_other()
    {
        var name = Keys.Unique(nameof(A_proclaim_on_one_instance_is_seen_by_observers_of_the_other));
        var oneClient = One.CreateClient();
        var campaign = await new LockClient(oneClient).SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=30000&value=v1");
        var token = campaign.Json.GetProperty("token").GetString();
        using var twoHttp = LeaseEvents.ClientFor(Two.BaseAddress);
        await using var onTwo = await ElectionEvents.OpenAsync(twoHttp, name);
        await onTwo.WaitForAsync(e => e.Value == "v1", "the observer's first event");

        await new LockClient(oneClient).SendAsync(HttpMethod.Patch, $"/elections/{name}/{token}?value=v2");

        var seen = await onTwo.WaitForLastAsync(e => e.Value == "v2", "the observer on instance two to see the new value");
        Assert.Equal(campaign.Json.GetProperty("term").GetInt64(), seen.Term);
    }

    [TopologyFact]
    public async Task Observers_on_two_instances_end_on_the_current_state_after_bursts_of_changes()
    {
        var name = Keys.Unique(nameof(Observers_on_two_instances_end_on_the_current_state_after_bursts_of_changes));
        using var oneHttp = LeaseEvents.ClientFor(One.BaseAddress);
        using var twoHttp = LeaseEvents.ClientFor(Two.BaseAddress);
        var observers = new List<ElectionEvents>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                observers.Add(await ElectionEvents.OpenAsync(i % 2 == 0 ? oneHttp : twoHttp, name));
            }

            var clients = new[] { new LockClient(oneHttp), new LockClient(twoHttp) };
            for (var burst = 0; burst < 3; burst++)
            {
                // Campaigns, proclaims, resigns from both instances as fast as they go; the burst leaves a leader or none.
                await Task.WhenAll(clients.Select((client, which) => Task.Run(async () =>
                {
                    for (var step = 0; step < 10; step++)
                    {
                        var reply = await client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=30000&value=c{which}-{step}");
                        if (reply.Status == HttpStatusCode.Created)
                        {
                            var token = reply.Json.GetProperty("token").GetString();
                            await client.SendAsync(HttpMethod.Patch, $"/elections/{name}/{token}?value=c{which}-{step}-p");
                            if (step < 9 || burst != 1)
                            {
                                await client.SendAsync(HttpMethod.Delete, $"/elections/{name}/{token}");
                            }
                        }
                    }
                })));

                var now = await clients[0].SendAsync(HttpMethod.Get, $"/elections/{name}");
                var term = now.Status == HttpStatusCode.OK ? now.Json.GetProperty("term").GetInt64() : (long?)null;
                var value = term is null ? null : now.Json.GetProperty("value").GetString();
                foreach (var observer in observers)
                {
                    await observer.WaitForLastAsync(e => e.Term == term && e.Value == value, $"every observer's last event to be the current state after burst {burst}");
                }

                if (term is not null)
                {
                    await new LockClient(One.CreateClient()).SendAsync(HttpMethod.Delete, $"/admin/elections/{name}");
                }
            }
        }
        finally
        {
            foreach (var observer in observers)
            {
                await observer.DisposeAsync();
            }
        }
    }
}

/// <summary>Elections across two instances over one Redis.</summary>
public sealed class ElectionTwoInstanceTests(RedisFixture redis) : ElectionBehaviour, IClassFixture<RedisFixture>
{
    protected override LockClient Client => new(One.CreateClient());

    protected override string RedisConnectionString => redis.ConnectionString;
}

/// <summary>Elections across two instances over a real three-master Redis Cluster: every script single-slot, notices on sharded pub/sub.</summary>
[StartsRedisServer]
public sealed class ClusterElectionTests(ClusterFixture cluster) : ElectionBehaviour, IClassFixture<ClusterFixture>
{
    protected override LockClient Client => cluster.Client;

    protected override string RedisConnectionString => cluster.ConnectionString;
}
