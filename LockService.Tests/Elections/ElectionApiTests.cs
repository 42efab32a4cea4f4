using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Elections;

/// <summary>One service with force allowed without authentication and room for two observers only.</summary>
public sealed class ElectionApiFixture : ApiFixture
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Operators:AllowForceReleaseWithoutAuth"] = "true",
        ["Elections:MaxObservers"] = "3",
    };
}

/// <summary>
/// The election routes through the service: bodies, problems and reasons as the contract gives them, stream-held
/// leadership, watches, and the observe stream (first event, Last-Event-ID, changes, the bound). Every answer is checked
/// against the service's OpenAPI document by the fixture's client.
/// </summary>
public sealed class ElectionApiTests(ElectionApiFixture fixture) : IClassFixture<ElectionApiFixture>
{
    private LockClient Client => fixture.Client;

    [Fact]
    public async Task Campaign_leader_proclaim_and_resign_answer_the_contracts_bodies()
    {
        var name = Keys.Unique(nameof(Campaign_leader_proclaim_and_resign_answer_the_contracts_bodies));

        var campaign = await Client.SendAsync(HttpMethod.Post, $"/elections/{name}", """{"ttlMs":9000,"value":"10.0.0.7:5432"}""");
        Assert.Equal(HttpStatusCode.Created, campaign.Status);
        var lease = campaign.Json;
        var token = lease.GetProperty("token").GetString()!;
        var term = lease.GetProperty("term").GetInt64();
        Assert.Equal($"/elections/{name}/{token}", campaign.Headers.Location!.OriginalString);
        Assert.Equal(name, lease.GetProperty("name").GetString());
        Assert.Equal("10.0.0.7:5432", lease.GetProperty("value").GetString());
        Assert.Equal(9000, lease.GetProperty("ttlMs").GetInt64());
        Assert.Equal(JsonValueKind.Null, lease.GetProperty("maxHoldMs").ValueKind);
        Fences.AssertTimeBased(term);

        var leader = await Client.SendAsync(HttpMethod.Get, $"/elections/{name}");
        Assert.Equal(HttpStatusCode.OK, leader.Status);
        Assert.Equal(term, leader.Json.GetProperty("term").GetInt64());
        Assert.Equal("10.0.0.7:5432", leader.Json.GetProperty("value").GetString());
        Assert.InRange(leader.Json.GetProperty("ttlMs").GetInt64(), 1, 9000);
        Assert.DoesNotContain(token, leader.Body, StringComparison.Ordinal);

        var proclaimed = await Client.SendAsync(HttpMethod.Patch, $"/elections/{name}/{token}?value=10.0.0.8:5432&ttlMs=20000");
        Assert.Equal(HttpStatusCode.OK, proclaimed.Status);
        Assert.Equal("10.0.0.8:5432", proclaimed.Json.GetProperty("value").GetString());
        Assert.Equal(20000, proclaimed.Json.GetProperty("ttlMs").GetInt64());
        Assert.Equal(term, proclaimed.Json.GetProperty("term").GetInt64());
        Assert.Equal("10.0.0.8:5432", (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).Json.GetProperty("value").GetString());

        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}/{token}")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, $"/elections/{name}/{token}")).Status);
        (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).AssertProblem(HttpStatusCode.NotFound, "no_leader");
        var after = (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}/{token}")).AssertProblem(HttpStatusCode.NotFound, "not_leader");
        Assert.Equal("released", after.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_second_candidate_gets_409_election_led_with_the_leaders_public_state_and_retry_after()
    {
        var name = Keys.Unique(nameof(A_second_candidate_gets_409_election_led_with_the_leaders_public_state_and_retry_after));
        var first = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=8000&value=node-1")).Json;

        var second = await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=5000&value=node-2");

        var problem = second.AssertProblem(HttpStatusCode.Conflict, "election_led");
        var leader = problem.GetProperty("leader");
        Assert.Equal(first.GetProperty("term").GetInt64(), leader.GetProperty("term").GetInt64());
        Assert.Equal("node-1", leader.GetProperty("value").GetString());
        Assert.Equal(first.GetProperty("acquiredAt").GetDateTimeOffset(), leader.GetProperty("acquiredAt").GetDateTimeOffset());
        Assert.True(leader.TryGetProperty("expiresAt", out _));
        Assert.False(leader.TryGetProperty("token", out _));
        Assert.DoesNotContain(first.GetProperty("token").GetString()!, second.Body, StringComparison.Ordinal);
        Assert.InRange(problem.GetProperty("retryAfterMs").GetInt64(), 1, 8000);
        Assert.Equal("8", second.Headers.RetryAfter!.ToString());
    }

    [Theory]
    [InlineData("""{"value":"line\nbreak"}""", "value")]
    [InlineData("""{"value":"tab\there"}""", "value")]
    [InlineData("""{"owner":"someone"}""", "owner")]
    [InlineData("""{"value":5}""", "value")]
    public async Task A_bad_campaign_is_400_naming_the_parameter_and_elects_nobody(string body, string parameter)
    {
        var name = Keys.Unique(nameof(A_bad_campaign_is_400_naming_the_parameter_and_elects_nobody));

        var reply = await Client.SendAsync(HttpMethod.Post, $"/elections/{name}", body);

        Assert.True(reply.AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter").GetProperty("errors").TryGetProperty(parameter, out _), reply.Body);
        (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).AssertProblem(HttpStatusCode.NotFound, "no_leader");
    }

    [Fact]
    public async Task A_value_of_1024_characters_is_taken_and_one_of_1025_is_refused()
    {
        var name = Keys.Unique(nameof(A_value_of_1024_characters_is_taken_and_one_of_1025_is_refused));
        (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}", JsonSerializer.Serialize(new { value = new string('v', 1025) })))
            .AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");

        var campaign = await Client.SendAsync(HttpMethod.Post, $"/elections/{name}", JsonSerializer.Serialize(new { value = new string('v', 1024) }));

        Assert.Equal(HttpStatusCode.Created, campaign.Status);
        Assert.Equal(1024, (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).Json.GetProperty("value").GetString()!.Length);
    }

    [Fact]
    public async Task A_forced_or_expired_leader_hears_its_reason_on_check_proclaim_and_resign()
    {
        var name = Keys.Unique(nameof(A_forced_or_expired_leader_hears_its_reason_on_check_proclaim_and_resign));
        var forced = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=10000")).Json.GetProperty("token").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, $"/admin/elections/{name}")).Status);
        (await Client.SendAsync(HttpMethod.Delete, $"/admin/elections/{name}")).AssertProblem(HttpStatusCode.NotFound, "no_leader");

        Assert.Equal("forced", (await Client.SendAsync(HttpMethod.Patch, $"/elections/{name}/{forced}?value=x")).AssertProblem(HttpStatusCode.NotFound, "not_leader").GetProperty("reason").GetString());

        var expired = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=50")).Json.GetProperty("token").GetString();
        await RedisServer.WaitUntilAsync(
            async () => (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "the short term to expire");

        Assert.Equal("expired", (await Client.SendAsync(HttpMethod.Delete, $"/elections/{name}/{expired}")).AssertProblem(HttpStatusCode.NotFound, "not_leader").GetProperty("reason").GetString());
        Assert.Equal("unknown", (await Client.SendAsync(HttpMethod.Get, $"/elections/{name}/{new string('a', 32)}")).AssertProblem(HttpStatusCode.NotFound, "not_leader").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_watch_of_the_leaders_token_answers_at_once_when_it_resigns()
    {
        var name = Keys.Unique(nameof(A_watch_of_the_leaders_token_answers_at_once_when_it_resigns));
        var token = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=30000")).Json.GetProperty("token").GetString();
        var watch = Client.SendAsync(HttpMethod.Get, $"/elections/{name}/{token}?waitMs=20000");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Leases().WatchingCount > 0), TimeSpan.FromSeconds(5), "the watch to be in place");

        var resigned = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, $"/elections/{name}/{token}")).Status);
        var answer = await watch.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal("released", answer.AssertProblem(HttpStatusCode.NotFound, "not_leader").GetProperty("reason").GetString());
        Assert.True(resigned.Elapsed < TimeSpan.FromSeconds(3), $"the watch answered {resigned.Elapsed.TotalMilliseconds:0} ms after the resign");
    }

    [Fact]
    public async Task A_waiting_candidate_leads_when_the_stream_holding_the_leadership_closes()
    {
        var name = Keys.Unique(nameof(A_waiting_candidate_leads_when_the_stream_holding_the_leadership_closes));
        var stream = await LeaseEvents.OpenAsync(fixture.Factory.CreateClient(), name, "ttlMs=3000&value=streamer", "elections");
        var (acquired, data) = await stream.NextEventAsync();
        Assert.Equal("acquired", acquired);
        var streamTerm = JsonDocument.Parse(data).RootElement.GetProperty("term").GetInt64();

        var waiting = Client.SendAsync(HttpMethod.Post, $"/elections/{name}?waitMs=20000&value=next");
        await RedisServer.WaitUntilAsync(() => Task.FromResult(fixture.Factory.Leases().WaitingCount > 0), TimeSpan.FromSeconds(5), "the candidate to wait");
        await stream.DisposeAsync();

        var next = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Created, next.Status);
        Assert.True(next.Json.GetProperty("term").GetInt64() > streamTerm);
        Assert.Equal("next", next.Json.GetProperty("value").GetString());
    }

    [Fact]
    public async Task A_leader_held_by_a_stream_and_forced_out_hears_event_lost_forced_and_observers_see_no_leader()
    {
        var name = Keys.Unique(nameof(A_leader_held_by_a_stream_and_forced_out_hears_event_lost_forced_and_observers_see_no_leader));
        await using var stream = await LeaseEvents.OpenAsync(fixture.Factory.CreateClient(), name, "ttlMs=3000&value=held", "elections");
        Assert.Equal("acquired", (await stream.NextEventAsync()).Name);
        await using var events = await ElectionEvents.OpenAsync(fixture.Client.Http, name);
        await events.WaitForAsync(e => e.Value == "held", "the observer to see the stream's leader");

        Assert.Equal(HttpStatusCode.NoContent, (await Client.SendAsync(HttpMethod.Delete, $"/admin/elections/{name}")).Status);

        var (lost, data) = await stream.NextEventAsync();
        Assert.Equal("lost", lost);
        Assert.Equal("forced", JsonDocument.Parse(data).RootElement.GetProperty("reason").GetString());
        await events.WaitForLastAsync(e => e.Name == "no-leader", "the observer to see no leader after the force");
    }

    [Fact]
    public async Task Observe_sends_the_current_state_first_then_every_change_with_ids_per_state()
    {
        var name = Keys.Unique(nameof(Observe_sends_the_current_state_first_then_every_change_with_ids_per_state));
        await using var events = await ElectionEvents.OpenAsync(fixture.Client.Http, name);
        Assert.Equal(HttpStatusCode.OK, events.Status);

        var first = await events.WaitForAsync(_ => true, "the first event");
        Assert.Equal("no-leader", first.Name);
        Assert.Equal(name, first.Json.GetProperty("name").GetString());

        var campaign = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=30000&value=a")).Json;
        var token = campaign.GetProperty("token").GetString();
        var elected = await events.WaitForAsync(e => e.Name == "leader", "the leader event");
        Assert.Equal(campaign.GetProperty("term").GetInt64(), elected.Term);
        Assert.Equal("a", elected.Value);
        Assert.NotEqual(first.Id, elected.Id);

        await Client.SendAsync(HttpMethod.Patch, $"/elections/{name}/{token}?value=b");
        var proclaimed = await events.WaitForAsync(e => e.Value == "b", "the proclaimed value");
        Assert.Equal(elected.Term, proclaimed.Term);
        Assert.NotEqual(elected.Id, proclaimed.Id);

        await Client.SendAsync(HttpMethod.Delete, $"/elections/{name}/{token}");
        var resigned = await events.WaitForAsync(e => e.Name == "no-leader", "no-leader after the resign", after: 0);
        Assert.Equal(first.Id, resigned.Id);
    }

    [Fact]
    public async Task Last_event_id_of_the_current_state_sends_no_first_event_and_of_another_sends_the_current_one()
    {
        var name = Keys.Unique(nameof(Last_event_id_of_the_current_state_sends_no_first_event_and_of_another_sends_the_current_one));
        var token = (await Client.SendAsync(HttpMethod.Post, $"/elections/{name}?ttlMs=30000&value=v1")).Json.GetProperty("token").GetString();
        string id;
        await using (var first = await ElectionEvents.OpenAsync(fixture.Client.Http, name))
        {
            id = (await first.WaitForAsync(e => e.Name == "leader", "the leader")).Id!;
        }

        await using var same = await ElectionEvents.OpenAsync(fixture.Client.Http, name, id);
        await using var stale = await ElectionEvents.OpenAsync(fixture.Client.Http, name, "1.0000000000000000");
        Assert.Equal(id, (await stale.WaitForAsync(_ => true, "the stale client's first event")).Id);

        // The resumed stream says nothing until the state changes, and then tells the change.
        await RedisServer.WaitUntilAsync(() => Task.FromResult(same.Comments.Count > 0), TimeSpan.FromSeconds(5), "the resumed stream's opening comment");
        Assert.Empty(same.Events);
        await Client.SendAsync(HttpMethod.Patch, $"/elections/{name}/{token}?value=v2");
        var change = await same.WaitForAsync(_ => true, "the change after the resume");
        Assert.Equal("v2", change.Value);
    }

    [Fact]
    public async Task An_idle_observe_stream_gets_a_comment_within_15_seconds()
    {
        var name = Keys.Unique(nameof(An_idle_observe_stream_gets_a_comment_within_15_seconds));
        await using var events = await ElectionEvents.OpenAsync(fixture.Client.Http, name);
        await events.WaitForAsync(_ => true, "the first event");

        var idle = Stopwatch.StartNew();
        await RedisServer.WaitUntilAsync(() => Task.FromResult(events.Comments.Contains(": heartbeat")), TimeSpan.FromSeconds(15), "a heartbeat comment on an idle stream");

        Assert.True(idle.Elapsed < TimeSpan.FromSeconds(15));
        Assert.Single(events.Events);
    }

    [Fact]
    public async Task Observers_past_elections_max_observers_get_429_and_a_closed_one_frees_its_place()
    {
        var name = Keys.Unique(nameof(Observers_past_elections_max_observers_get_429_and_a_closed_one_frees_its_place));
        var open = new List<ElectionEvents>();
        try
        {
            // The fixture allows 3: others of this class's tests may hold some, so open until refused.
            ElectionEvents? refused = null;
            for (var i = 0; i < 4 && refused is null; i++)
            {
                var events = await ElectionEvents.OpenAsync(fixture.Client.Http, name);
                if (events.Status == HttpStatusCode.TooManyRequests)
                {
                    refused = events;
                }

                open.Add(events);
            }

            Assert.NotNull(refused);
            await open[0].DisposeAsync();
            open.RemoveAt(0);
            await RedisServer.WaitUntilAsync(
                async () =>
                {
                    await using var again = await ElectionEvents.OpenAsync(fixture.Client.Http, name);
                    return again.Status == HttpStatusCode.OK;
                },
                TimeSpan.FromSeconds(5),
                "a place to free once an observer closed");
        }
        finally
        {
            foreach (var events in open)
            {
                await events.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData("lock:e:")]
    [InlineData("sem:")]
    public async Task An_elections_key_prefix_that_overlaps_another_kinds_stops_the_service_naming_both(string prefix)
    {
        // An election's lease string would land on a lock's keys or a semaphore's hashes: each kind owns its key space.
        await using var service = ServiceProcess.Start(new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:0" }, $"--Elections:KeyPrefix={prefix}");

        Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        var line = Assert.Single(service.Stderr, l => l.Length > 0);
        Assert.Contains("Elections:KeyPrefix", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_admin_listing_shows_led_elections_without_tokens()
    {
        var prefix = Keys.Unique(nameof(The_admin_listing_shows_led_elections_without_tokens));
        var token = (await Client.SendAsync(HttpMethod.Post, $"/elections/{prefix}-a?value=listed")).Json.GetProperty("token").GetString()!;

        var page = await Client.SendAsync(HttpMethod.Get, $"/admin/elections?prefix={prefix}");

        Assert.Equal(HttpStatusCode.OK, page.Status);
        var listed = Assert.Single(page.Json.GetProperty("elections").EnumerateArray());
        Assert.Equal($"{prefix}-a", listed.GetProperty("name").GetString());
        Assert.Equal("listed", listed.GetProperty("value").GetString());
        Assert.DoesNotContain(token, page.Body, StringComparison.Ordinal);
    }
}
