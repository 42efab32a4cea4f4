using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;
using static LockService.Tests.Elections.ElectionTesting;

namespace LockService.Tests.Elections;

/// <summary>
/// The election scripts against a real Redis: terms follow the lock's fencing rule, the value travels with the lease, a
/// refused campaign tells who leads, ended leaderships give their reasons, and every change an observer must see is announced.
/// </summary>
public sealed class ElectionScriptTests(ElectionFixture fixture) : IClassFixture<ElectionFixture>
{
    private ElectionStore Store => fixture.Store;

    [Fact]
    public async Task Terms_strictly_increase_over_resign_force_and_expiry()
    {
        var name = ElectionFixture.NewName(nameof(Terms_strictly_increase_over_resign_force_and_expiry));
        var terms = new List<long>();

        var first = await ElectAsync(name, Campaign(5_000, value: "a"));
        terms.Add(first.Term);
        Assert.True((await Store.ResignAsync(name, first.Token)).Released);

        var second = await ElectAsync(name, Campaign(5_000, value: "b"));
        terms.Add(second.Term);
        Assert.True((await Store.ForceAsync(name)).Forced);

        var third = await ElectAsync(name, Campaign(50, value: "c"));
        terms.Add(third.Term);
        await RedisServer.WaitUntilAsync(async () => await Store.LeaderAsync(name) is null, TimeSpan.FromSeconds(5), "the short term to expire");

        var fourth = await ElectAsync(name, Campaign(5_000));
        terms.Add(fourth.Term);

        Fences.AssertStrictlyIncreasing(terms);
        foreach (var term in terms)
        {
            Fences.AssertTimeBased(term);
        }
    }

    [Fact]
    public async Task A_term_exceeds_a_last_term_written_above_the_clock_and_stays_below_2_pow_53()
    {
        var name = ElectionFixture.NewName(nameof(A_term_exceeds_a_last_term_written_above_the_clock_and_stays_below_2_pow_53));
        const long last = (1L << 52) + 7;
        await fixture.Db.StringSetAsync(Store.KeysOf(name).Term, last);

        var lease = await ElectAsync(name, Campaign(5_000));

        Assert.Equal(last + 1, lease.Term);
        Assert.Equal(last + 1, (await Store.LeaderAsync(name))!.Term);
    }

    [Fact]
    public async Task A_last_term_no_term_below_2_pow_53_can_exceed_elects_nobody_and_writes_nothing()
    {
        var name = ElectionFixture.NewName(nameof(A_last_term_no_term_below_2_pow_53_can_exceed_elects_nobody_and_writes_nothing));
        var keys = Store.KeysOf(name);
        await fixture.Db.StringSetAsync(keys.Term, "9007199254740991");

        var ex = await Assert.ThrowsAsync<RedisServerException>(() => Store.CampaignAsync(name, Campaign(5_000)));

        Assert.True(RedisFaults.IsBadData(ex), ex.Message);
        Assert.Null(await Store.LeaderAsync(name));
        Assert.False(await fixture.Db.KeyExistsAsync(keys.Leader));
        Assert.Equal("9007199254740991", (string?)await fixture.Db.StringGetAsync(keys.Term));
    }

    [Fact]
    public async Task The_leader_body_shows_term_value_and_times_from_redis_and_never_the_token()
    {
        var name = ElectionFixture.NewName(nameof(The_leader_body_shows_term_value_and_times_from_redis_and_never_the_token));
        var lease = await ElectAsync(name, Campaign(8_000, value: "10.0.0.7:5432 primary"));

        var leader = (await Store.LeaderAsync(name))!;

        Assert.Equal(name.Key, leader.Name);
        Assert.Equal(lease.Term, leader.Term);
        Assert.Equal("10.0.0.7:5432 primary", leader.Value);
        Assert.Equal(lease.AcquiredAt, leader.AcquiredAt);
        Assert.InRange(leader.TtlMs, 7_000, 8_000);
        Assert.InRange((leader.ExpiresAt - lease.ExpiresAt).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Assert.DoesNotContain(lease.Token, leader.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refused_campaign_tells_the_leaders_term_value_and_times_and_takes_nothing()
    {
        var name = ElectionFixture.NewName(nameof(A_refused_campaign_tells_the_leaders_term_value_and_times_and_takes_nothing));
        var lease = await ElectAsync(name, Campaign(6_000, value: "node-1"));

        var refused = await Store.CampaignAsync(name, Campaign(5_000, value: "node-2"));

        Assert.Equal(AcquireStatus.Held, refused.Status);
        Assert.Null(refused.Lease);
        Assert.Equal(lease.Term, refused.Busy!.Term);
        Assert.Equal("node-1", refused.Busy.Value);
        Assert.Equal(lease.AcquiredAt, refused.Busy.AcquiredAt);
        Assert.InRange(refused.RetryAfterMs, 5_000, 6_000);
        Assert.InRange((refused.Busy.ExpiresAt - lease.ExpiresAt).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Assert.Equal("node-1", (await Store.LeaderAsync(name))!.Value);
    }

    [Fact]
    public async Task An_empty_value_is_empty_and_a_value_of_1024_characters_travels_whole()
    {
        var name = ElectionFixture.NewName(nameof(An_empty_value_is_empty_and_a_value_of_1024_characters_travels_whole));
        var empty = await ElectAsync(name, Campaign(5_000));
        Assert.Equal(string.Empty, empty.Value);
        Assert.Equal(string.Empty, (await Store.LeaderAsync(name))!.Value);
        Assert.True((await Store.ResignAsync(name, empty.Token)).Released);

        var longest = string.Concat(Enumerable.Repeat("é✓ a", 256));
        var full = await ElectAsync(name, Campaign(5_000, value: longest));
        Assert.Equal(longest, full.Value);
        Assert.Equal(longest, (await Store.LeaderAsync(name))!.Value);
    }

    [Theory]
    [InlineData("line\nbreak")]
    [InlineData("tab\t")]
    [InlineData("del\u007f")]
    public async Task A_value_with_a_control_character_or_over_1024_characters_is_refused_before_redis(string value)
    {
        var name = ElectionFixture.NewName(nameof(A_value_with_a_control_character_or_over_1024_characters_is_refused_before_redis));

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => Store.CampaignAsync(name, Campaign(5_000, value: value)));
        Assert.Equal(CampaignRequest.ValueName, ex.ParamName);
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CampaignAsync(name, Campaign(5_000, value: new string('v', 1025))));
        Assert.False(await fixture.Db.KeyExistsAsync(Store.KeysOf(name).Leader));
    }

    [Fact]
    public async Task Proclaim_sets_the_value_extends_and_keeps_term_and_acquiredAt()
    {
        var name = ElectionFixture.NewName(nameof(Proclaim_sets_the_value_extends_and_keeps_term_and_acquiredAt));
        var lease = await ElectAsync(name, Campaign(2_000, value: "old"));

        var proclaimed = await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(9_000, "new"));

        Assert.Equal("new", proclaimed.Lease!.Value);
        Assert.Equal(lease.Term, proclaimed.Lease.Term);
        Assert.Equal(9_000, proclaimed.Lease.TtlMs);
        var leader = (await Store.LeaderAsync(name))!;
        Assert.Equal("new", leader.Value);
        Assert.Equal(lease.AcquiredAt, leader.AcquiredAt);
        Assert.InRange(leader.TtlMs, 8_000, 9_000);

        // Without a value it only extends, to the TTL of the campaign by default, and keeps the value.
        var extended = await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest());
        Assert.Equal(2_000, extended.Lease!.TtlMs);
        Assert.Equal("new", extended.Lease.Value);

        // An empty value is a value: it clears the old one.
        Assert.Equal(string.Empty, (await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: string.Empty))).Lease!.Value);
        Assert.Equal(string.Empty, (await Store.LeaderAsync(name))!.Value);
    }

    [Fact]
    public async Task A_token_that_does_not_lead_says_why_resigned_forced_expired_or_unknown()
    {
        var name = ElectionFixture.NewName(nameof(A_token_that_does_not_lead_says_why_resigned_forced_expired_or_unknown));

        var resigned = await ElectAsync(name, Campaign(5_000));
        Assert.True((await Store.ResignAsync(name, resigned.Token)).Released);
        var forced = await ElectAsync(name, Campaign(5_000));
        Assert.True((await Store.ForceAsync(name)).Forced);
        var expired = await ElectAsync(name, Campaign(30));
        await RedisServer.WaitUntilAsync(async () => await Store.LeaderAsync(name) is null, TimeSpan.FromSeconds(5), "the short term to expire");
        var leading = await ElectAsync(name, Campaign(5_000));

        Assert.Equal(LeaseEnd.Released, (await Store.CheckAsync(name, resigned.Token)).Ended);
        Assert.Equal(LeaseEnd.Forced, (await Store.ProclaimAsync(name, forced.Token, new ProclaimRequest(Value: "x"))).Ended);
        Assert.Equal(LeaseEnd.Expired, (await Store.ResignAsync(name, expired.Token)).Ended);
        Assert.Equal(LeaseEnd.Unknown, (await Store.CheckAsync(name, LeaseToken.New())).Ended);

        // None of those touched the leader.
        var check = await Store.CheckAsync(name, leading.Token);
        Assert.Equal(leading.Term, check.Info!.Term);
        Assert.Equal(string.Empty, check.Info.Value);
    }

    [Fact]
    public async Task An_idempotent_campaign_retried_while_it_leads_gets_the_same_term_and_token()
    {
        var name = ElectionFixture.NewName(nameof(An_idempotent_campaign_retried_while_it_leads_gets_the_same_term_and_token));
        var lease = await ElectAsync(name, Campaign(5_000, value: "v1", idempotencyKey: "retry-1"));
        await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: "v2"));

        var replay = await Store.CampaignAsync(name, Campaign(5_000, value: "ignored", idempotencyKey: "retry-1"));

        Assert.True(replay.Replayed);
        Assert.Equal(lease.Token, replay.Lease!.Token);
        Assert.Equal(lease.Term, replay.Lease.Term);
        Assert.Equal("v2", replay.Lease.Value);
    }

    [Fact]
    public async Task Every_change_an_observer_must_see_is_announced_on_the_elections_channel()
    {
        var name = ElectionFixture.NewName(nameof(Every_change_an_observer_must_see_is_announced_on_the_elections_channel));
        var notices = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var subscriber = fixture.Redis.Redis.GetSubscriber();
        var channel = Store.SubscriptionOf(name);
        await subscriber.SubscribeAsync(channel, (_, message) => notices.Writer.TryWrite(message!));
        try
        {
            var lease = await ElectAsync(name, Campaign(5_000));
            Assert.Equal(LeaseNotices.Acquired, await NextAsync());

            await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: "same"));
            Assert.Equal(ElectionMessages.Proclaimed, await NextAsync());

            // The same value again is no change: nothing is announced (the resign's notice comes next).
            await Store.ProclaimAsync(name, lease.Token, new ProclaimRequest(Value: "same"));
            await Store.ResignAsync(name, lease.Token);
            Assert.Equal(LeaseNotices.Released, await NextAsync());

            await ElectAsync(name, Campaign(5_000, idempotencyKey: "once"));
            Assert.Equal(LeaseNotices.Acquired, await NextAsync());
            await Store.ForceAsync(name);
            Assert.Equal(LeaseNotices.Released, await NextAsync());
            Assert.False(notices.Reader.TryRead(out var extra), $"one notice per change, and then {extra}");
        }
        finally
        {
            await subscriber.UnsubscribeAsync(channel);
        }

        async Task<string> NextAsync() => await notices.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_leader_key_written_by_hand_is_baddata_for_a_campaign_and_nothing_is_written()
    {
        var name = ElectionFixture.NewName(nameof(A_leader_key_written_by_hand_is_baddata_for_a_campaign_and_nothing_is_written));
        var keys = Store.KeysOf(name);
        await fixture.Db.StringSetAsync(keys.Leader, "not a lease", TimeSpan.FromSeconds(30));

        var ex = await Assert.ThrowsAsync<RedisServerException>(() => Store.CampaignAsync(name, Campaign(5_000)));

        Assert.True(RedisFaults.IsBadData(ex), ex.Message);
        Assert.Equal("not a lease", (string?)await fixture.Db.StringGetAsync(keys.Leader));
        Assert.False(await fixture.Db.KeyExistsAsync(keys.Term));
    }

    [RedisServerFact]
    public async Task A_new_value_wakes_no_waiting_candidate_and_a_resign_hands_over_at_once()
    {
        // Its own Redis, so that the scripts it runs can be counted: a waiting candidate woken by a proclaim would try
        // (and fail) once per proclaim. The head's own re-check is a minute away, so that it adds no attempt.
        await using var redis = await RedisServer.StartNewAsync();
        using var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var store = NewStore(multiplexer, new RedisOptions { ConnectionString = redis.ConnectionString }, limits: new LeaseOptions { RecheckMs = 60_000 });
        var name = ElectionFixture.NewName(nameof(A_new_value_wakes_no_waiting_candidate_and_a_resign_hands_over_at_once));
        var leader = (await store.CampaignAsync(name, Campaign(30_000))).Lease!;
        var waiting = store.CampaignAsync(name, Campaign(30_000, "next", waitMs: 20_000));
        var server = multiplexer.GetServers()[0];
        await RedisServer.WaitUntilAsync(async () => await ScriptCallsAsync(server) >= 3, TimeSpan.FromSeconds(5), "the candidate's first attempt");
        await store.ProclaimAsync(name, leader.Token, new ProclaimRequest(Value: "loaded"));   // the script is known to Redis from here
        await Task.Delay(200);
        var before = await ScriptCallsAsync(server);

        for (var i = 0; i < 20; i++)
        {
            await store.ProclaimAsync(name, leader.Token, new ProclaimRequest(Value: $"v{i}"));
        }

        await Task.Delay(200);
        Assert.Equal(before + 20, await ScriptCallsAsync(server));
        Assert.False(waiting.IsCompleted);

        await store.ResignAsync(name, leader.Token);
        var next = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("next", next.Lease!.Value);
        Assert.True(next.Lease.Term > leader.Term);

        static async Task<long> ScriptCallsAsync(IServer server)
        {
            var info = (await server.InfoAsync("commandstats")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
            return new[] { "cmdstat_evalsha", "cmdstat_eval" }.Sum(k => info.TryGetValue(k, out var v) ? long.Parse(v.Split(',')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture) : 0);
        }
    }

    private async Task<ElectionLease> ElectAsync(LeaseName name, CampaignRequest request)
    {
        var reply = await Store.CampaignAsync(name, request);
        Assert.Equal(AcquireStatus.Acquired, reply.Status);
        return reply.Lease!;
    }
}
