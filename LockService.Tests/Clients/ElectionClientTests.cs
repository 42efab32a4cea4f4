using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading.Channels;
using LockService.Client;
using LockService.Tests.Infrastructure;
using LockClient = LockService.Client.LockClient;
using LockCtl = LockService.Tests.Clients.LockCtlProcess;

namespace LockService.Tests.Clients;

/// <summary>
/// Elections through the .NET client and through lockctl as a real process (<c>elect</c>, <c>observe</c>), against the
/// service on a real Kestrel port: COMMAND runs only while its lockctl leads, observers see every change, and an
/// observer whose connection drops resumes where it was.
/// </summary>
public sealed class ElectionClientTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private static readonly Dictionary<string, string?> ForceAllowed = new() { ["Operators:AllowForceReleaseWithoutAuth"] = "true" };

    private readonly string _dir = Directory.CreateTempSubdirectory("lockctl-elect-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task SIGKILL_of_the_leaders_lockctl_stops_its_command_at_once_and_the_next_candidates_command_runs_only_after_it_in_a_greater_term()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var name = Keys.Unique(nameof(SIGKILL_of_the_leaders_lockctl_stops_its_command_at_once_and_the_next_candidates_command_runs_only_after_it_in_a_greater_term));
        var client = LockClient.Create(service.BaseAddress);

        // The pause before the pid: the SIGKILL must come after lockctl has told its watchdog the command's group.
        using var leader = LockCtl.Start(
            service.BaseAddress, ["elect", name, "--value", "first", "--ttl", "3s", "--", "sh", "-c", $"echo \"$LOCK_TERM $LOCK_FENCING_TOKEN $LOCK_KEY\" > {_dir}/first; sleep 0.5; echo $$ > {_dir}/pid; exec sleep 60"]);
        var pid = await PidAsync();
        var (term, fence, key) = Seen("first");
        Assert.Equal((term, name), (fence, key));
        Assert.Equal("first", (await client.LeaderAsync(name))!.Value);

        // A second candidate campaigns (waiting, by default, until it leads) and runs nothing meanwhile. Its command
        // records whether the first one still ran when it started (a zombie, dead but not yet reaped, does not run).
        var firstState = $"$(cut -d')' -f2 /proc/{pid}/stat 2>/dev/null | cut -c2)";
        using var next = LockCtl.Start(
            service.BaseAddress,
            ["elect", name, "--value", "second", "--", "sh", "-c", $"echo \"$LOCK_TERM\" > {_dir}/second-started; s={firstState}; touch {_dir}/second-saw-first-$([ -n \"$s\" ] && [ \"$s\" != Z ] && echo running || echo gone)"]);
        await RedisServer.WaitUntilAsync(async () => (await client.LeaderAsync(name))?.Value == "first", Bound, "the first candidate to lead");
        Assert.False(File.Exists(Path.Combine(_dir, "second-started")));

        leader.Process.Kill();
        await leader.Process.WaitForExitAsync().WaitAsync(Bound);
        var killed = Stopwatch.StartNew();
        await Eventually(() => !LockCtl.Running(pid), "the leader's command to stop after its lockctl's SIGKILL");
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(2), $"the leader's command stopped {killed.ElapsedMilliseconds} ms after its lockctl's SIGKILL");

        // The leadership, no longer renewed, lapses at its TTL: then, and only then, the next candidate leads and runs.
        Assert.Equal(0, await next.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "second-saw-first-gone")), "the next leader's command ran while the killed leader's still ran");
        var nextTerm = long.Parse(File.ReadAllText(Path.Combine(_dir, "second-started")).Trim(), CultureInfo.InvariantCulture);
        Assert.True(nextTerm > term, $"term {nextTerm} after term {term}");
        Assert.Null(await client.LeaderAsync(name));
    }

    [Fact]
    public async Task Elect_forced_out_sends_SIGTERM_to_its_command_and_exits_70_and_a_led_election_is_75_without_waiting()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, ForceAllowed, kestrel: true);
        var name = Keys.Unique(nameof(Elect_forced_out_sends_SIGTERM_to_its_command_and_exits_70_and_a_led_election_is_75_without_waiting));
        var client = LockClient.Create(service.BaseAddress);
        using var run = LockCtl.Start(service.BaseAddress, ["elect", name, "--", "sh", "-c", $"trap 'touch {_dir}/term; exit 0' TERM; touch {_dir}/ready; while true; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the leader's command to start");

        var led = await LockCtl.RunAsync(service.BaseAddress, ["elect", name, "--wait", "0", "--", "touch", $"{_dir}/ran"]);
        Assert.Equal(75, led.ExitCode);
        Assert.Contains("led by another candidate", led.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "ran")));

        Assert.True(await client.ForceResignAsync(name));
        Assert.Equal(70, await run.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "term")));
        Assert.Contains("lost the leadership", run.Error, StringComparison.Ordinal);
        Assert.Contains("forced", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Observe_prints_the_state_then_a_leader_its_proclaim_and_no_leader_one_json_line_each_and_exits_0_on_SIGTERM()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var name = Keys.Unique(nameof(Observe_prints_the_state_then_a_leader_its_proclaim_and_no_leader_one_json_line_each_and_exits_0_on_SIGTERM));
        var client = LockClient.Create(service.BaseAddress);
        using var observe = LockCtl.Start(service.BaseAddress, ["observe", name]);
        await LinesAsync(observe, 1);

        await using (var leader = await client.CampaignAsync(name, "10.0.0.1:80"))
        {
            await LinesAsync(observe, 2);
            Assert.True(await leader.ProclaimAsync("10.0.0.2:80"));
            Assert.Equal("10.0.0.2:80", leader.Value);
            await LinesAsync(observe, 3);
            Assert.Equal(new ReleaseResult(true, null), await leader.ResignAsync());
        }

        var lines = await LinesAsync(observe, 4);
        Curl.Signal(observe.Process, "TERM");
        Assert.Equal(0, await observe.ExitAsync());

        var events = lines.Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(["no-leader", "leader", "leader", "no-leader"], events.Select(e => e.GetProperty("event").GetString()));
        Assert.All(events, e => Assert.Equal(name, e.GetProperty("name").GetString()));
        Assert.Equal("event", events[1].EnumerateObject().First().Name);
        Assert.Equal(["10.0.0.1:80", "10.0.0.2:80"], events[1..3].Select(e => e.GetProperty("value").GetString()));
        Assert.Equal(events[1].GetProperty("term").GetInt64(), events[2].GetProperty("term").GetInt64());
        Assert.DoesNotContain("token", observe.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_observe_reconnects_after_a_dropped_stream_with_Last_Event_ID_and_yields_only_what_changed()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var name = Keys.Unique(nameof(Client_observe_reconnects_after_a_dropped_stream_with_Last_Event_ID_and_yields_only_what_changed));
        var candidate = LockClient.Create(service.BaseAddress);
        var network = new DroppingHandler();
        var observer = LockClient.Create(service.BaseAddress, handler: network);
        var events = Channel.CreateUnbounded<ElectionEvent>();
        using var stop = new CancellationTokenSource();
        var observing = Task.Run(async () =>
        {
            await foreach (var change in observer.ObserveAsync(name, cancellationToken: stop.Token))
            {
                await events.Writer.WriteAsync(change);
            }
        });

        var first = await NextAsync(events);
        Assert.Null(first.Leader);
        await using var leader = await candidate.CampaignAsync(name, "a");
        var led = await NextAsync(events);
        Assert.Equal(("a", leader.Term), (led.Leader!.Value, led.Leader.Term));

        // Dropped with nothing changed: the reconnection names the last state, and the service sends nothing for it, so
        // the next event the client yields is the next change, not the same leader again.
        network.Drop();
        await RedisServer.WaitUntilAsync(() => Task.FromResult(network.LastEventIds.Count == 2), Bound, "the observer to reconnect");
        Assert.True(await leader.ProclaimAsync("b"));
        var proclaimed = await NextAsync(events);
        Assert.Equal("b", proclaimed.Leader!.Value);

        // Dropped, and the leader resigns while the observer is away: the reconnection's first event is the new state.
        network.Hold();
        network.Drop();
        Assert.Equal(new ReleaseResult(true, null), await leader.ResignAsync());
        network.Release();
        var resigned = await NextAsync(events);
        Assert.Null(resigned.Leader);

        Assert.Equal([null, led.Id, proclaimed.Id], network.LastEventIds);
        Assert.NotEqual(led.Id, proclaimed.Id);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => observing.WaitAsync(Bound));
    }

    [Fact]
    public async Task Campaign_handle_leads_until_resigned_a_rival_gets_election_led_with_the_leader_and_its_LostToken_fires_when_forced_out()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, ForceAllowed, kestrel: true);
        var name = Keys.Unique(nameof(Campaign_handle_leads_until_resigned_a_rival_gets_election_led_with_the_leader_and_its_LostToken_fires_when_forced_out));
        var client = LockClient.Create(service.BaseAddress);

        await using var leader = await client.CampaignAsync(name, "me", TimeSpan.FromSeconds(1));
        Assert.Equal((name, "me", leader.FencingToken), (leader.Name, leader.Value, leader.Term));
        var rival = await Assert.ThrowsAsync<ElectionLedException>(() => client.CampaignAsync(name, "rival", wait: TimeSpan.FromMilliseconds(50)));
        Assert.Equal((leader.Term, "me"), (rival.Leader!.Term, rival.Leader.Value));
        Assert.Null(await client.TryCampaignAsync(name, "rival"));

        // Past its 1 s TTL it still leads: the handle renewed it; a check describes the leader, never with its token.
        await RedisServer.WaitUntilAsync(() => Task.FromResult(leader.Lease.ExpiresAt > leader.Lease.AcquiredAt.AddSeconds(1.5)), Bound, "a renewal of the leadership");
        var status = await client.CheckLeadershipAsync(name, leader.Token);
        Assert.Equal((leader.Term, "me"), (Assert.IsType<LeaderInfo>(status.Info).Term, ((LeaderInfo)status.Info!).Value));
        Assert.Equal(leader.Term, (await client.LeaderAsync(name))!.Term);

        Assert.True(await client.ForceResignAsync(name));
        await RedisServer.WaitUntilAsync(() => Task.FromResult(leader.LostToken.IsCancellationRequested), Bound, "the leadership's LostToken");
        Assert.Equal(LeaseEndReason.Forced, leader.LossReason);
        Assert.False(await leader.ProclaimAsync("too late"));
        Assert.Null(await leader.ResignAsync());

        var nextTerm = await client.TryCampaignAsync(name);
        Assert.True(nextTerm!.Term > leader.Term);
        Assert.Equal(string.Empty, nextTerm.Value);
        Assert.True((await client.ResignAsync(name, nextTerm.Token)).Released);
        Assert.Equal(LeaseEndReason.Released, (await client.ResignAsync(name, nextTerm.Token)).EndReason);
    }

    /// <summary>The first <paramref name="count"/> lines observe printed, once it has printed them.</summary>
    private static async Task<IReadOnlyList<string>> LinesAsync(LockCtl observe, int count)
    {
        await Eventually(() => observe.LinesSoFar.Count >= count || observe.Process.HasExited, $"lockctl observe to print {count} lines");
        if (observe.Process.HasExited)
        {
            Assert.Fail($"lockctl observe exited {observe.Process.ExitCode}: {observe.Error}");
        }

        return observe.LinesSoFar.Take(count).ToList();
    }

    private static async Task<ElectionEvent> NextAsync(Channel<ElectionEvent> events)
    {
        using var deadline = new CancellationTokenSource(Bound);
        return await events.Reader.ReadAsync(deadline.Token);
    }

    private async Task<int> PidAsync()
    {
        await Eventually(() => Written("pid"), "the leader's command to start");
        return int.Parse(File.ReadAllText(Path.Combine(_dir, "pid")).Trim(), CultureInfo.InvariantCulture);
    }

    private bool Written(string name) => File.Exists(Path.Combine(_dir, name)) && File.ReadAllText(Path.Combine(_dir, name)).EndsWith('\n');

    /// <summary>The LOCK_TERM, LOCK_FENCING_TOKEN and LOCK_KEY a command wrote.</summary>
    private (long Term, long FencingToken, string Key) Seen(string name)
    {
        var seen = File.ReadAllText(Path.Combine(_dir, name)).Trim().Split(' ');
        return (long.Parse(seen[0], CultureInfo.InvariantCulture), long.Parse(seen[1], CultureInfo.InvariantCulture), seen[2]);
    }

    private static Task Eventually(Func<bool> condition, string what) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(condition()), Bound, what);

    /// <summary>
    /// The network between an observer and the service, in the observer's process: it records the
    /// <c>Last-Event-ID</c> of every observe request, can drop the open streams (their next read fails as a reset
    /// connection does), and can hold new requests back until released (the observer is away meanwhile).
    /// </summary>
    private sealed class DroppingHandler() : DelegatingHandler(new SocketsHttpHandler())
    {
        private readonly Lock _gate = new();
        private readonly List<string?> _lastEventIds = [];
        private CancellationTokenSource _drop = new();
        private TaskCompletionSource _open = Opened();

        public IReadOnlyList<string?> LastEventIds
        {
            get
            {
                lock (_gate)
                {
                    return [.. _lastEventIds];
                }
            }
        }

        /// <summary>Breaks every stream open now.</summary>
        public void Drop()
        {
            CancellationTokenSource dropped;
            lock (_gate)
            {
                (dropped, _drop) = (_drop, new CancellationTokenSource());
            }

            dropped.Cancel();
        }

        /// <summary>New requests wait until <see cref="Release"/>.</summary>
        public void Hold()
        {
            lock (_gate)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        public void Release()
        {
            lock (_gate)
            {
                _open.TrySetResult();
            }
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Task open;
            lock (_gate)
            {
                open = _open.Task;
            }

            await open.WaitAsync(cancellationToken);
            CancellationToken drop;
            lock (_gate)
            {
                _lastEventIds.Add(request.Headers.TryGetValues("Last-Event-ID", out var ids) ? ids.Single() : null);
                drop = _drop.Token;
            }

            var response = await base.SendAsync(request, cancellationToken);
            var content = new StreamContent(new DroppableStream(await response.Content.ReadAsStreamAsync(cancellationToken), drop));
            foreach (var header in response.Content.Headers)
            {
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            response.Content = content;
            return response;
        }

        private static TaskCompletionSource Opened()
        {
            var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            open.SetResult();
            return open;
        }
    }

    /// <summary>A response stream whose reads fail as on a reset connection once <c>drop</c> fires.</summary>
    private sealed class DroppableStream(Stream inner, CancellationToken drop) : ReadOnlyWrapper(inner)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, drop);
            try
            {
                return await Inner.ReadAsync(buffer, either.Token);
            }
            catch (OperationCanceledException) when (drop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new IOException("The connection was reset (dropped by the test).");
            }
        }
    }
}
