using LockService.Core.Leases;
using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.Elections;

/// <summary>
/// The election kind: one leader at a time, whose lease's fencing token is its term and who shows a value. A campaign is
/// an acquire on the <see cref="LeaseEngine"/> (waiting, watching and keeping a stream's leadership are the engine's); the
/// store's scripts are the lock's own, wrapped where an election adds to them (<see cref="ElectionScripts"/>), under the
/// elections' key prefix (<see cref="ElectionKeys"/>). Its wake policy is the lock's, but a new value frees nothing
/// (<see cref="ElectionWake"/>). One store per process.
/// </summary>
public sealed class ElectionStore : LeaseStore<CampaignRequest, ElectionLease, ElectionLeader, ElectionLeader?>, IListedLeases<ElectionLeader>
{
    private static readonly RedisScript CampaignScript = new(ElectionScripts.Campaign);
    private static readonly RedisScript ProclaimScript = new(ElectionScripts.Proclaim);
    private static readonly RedisScript ResignScript = new(LockScripts.Release);
    private static readonly RedisScript LookScript = new(LockScripts.Inspect);
    private static readonly RedisScript ForceScript = new(LockScripts.ForceRelease);

    private readonly long _fenceRetentionMs;

    /// <summary>Creates the election kind over <paramref name="engine"/>, its keys under <see cref="ElectionOptions.KeyPrefix"/>.</summary>
    public ElectionStore(LeaseEngine engine, ElectionOptions options)
        : base(engine, LeaseKind.Election, options.KeyPrefix, ElectionWake.Instance)
    {
        _fenceRetentionMs = engine.Limits.FenceRetentionMs;
    }

    /// <summary>The bound on one Redis call (<see cref="RedisOptions.TimeoutMs"/>).</summary>
    public TimeSpan Timeout => Redis.Timeout;

    /// <summary>The keys of <paramref name="name"/>.</summary>
    public ElectionKeys KeysOf(LeaseName name) => new(RefOf(name).Key);

    /// <summary>The channel on which every change of <paramref name="name"/> is announced, as this instance subscribes to it.</summary>
    public RedisChannel SubscriptionOf(LeaseName name) => Redis.ChannelOf(KeysOf(name).Channel);

    /// <inheritdoc />
    public override RequestErrors? Validate(CampaignRequest request, bool stream = false) => request.Validate(Limits, stream);

    /// <summary>
    /// Extends the leadership of <paramref name="token"/> (to the TTL asked, else the one it campaigned with, cut to its hold
    /// cap) and sets its value when one is given (announced when it differs); or says why the token does not lead.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks the lease rules or the value rule.</exception>
    public Task<ExtendResult<ElectionLease>> ProclaimAsync(LeaseName name, string token, ProclaimRequest request) =>
        request.Validate(Limits) is { } errors ? throw errors.ToException() : ProclaimAsync(RefOf(name), token, request);

    /// <summary>Ends the leadership of <paramref name="token"/> (announced: a waiting candidate takes over); or says why it does not lead.</summary>
    public override async Task<ReleaseResult> ReleaseAsync(LeaseRef lease, string token)
    {
        var (resigned, ended, acquiredAtMs) = ElectionReplies.Resign(
            await Redis.EvalAsync(ResignScript, ResignKeys(lease), ResignArgs(lease, token)).ConfigureAwait(false));
        return new ReleaseResult(resigned, ended, resigned && acquiredAtMs > 0 ? Math.Max(0, Engine.Clock.GetUtcNow().ToUnixTimeMilliseconds() - acquiredAtMs) : 0);
    }

    /// <summary>The current leader (never its token), or null when nobody leads.</summary>
    public async Task<ElectionLeader?> InspectAsync(LeaseName name) => (await LookAsync(RefOf(name), RedisValue.EmptyString).ConfigureAwait(false)).Info;

    /// <summary>Forces the leader out whoever it is (an operator's act): announced, and its holder's next look says <see cref="LeaseEnd.Forced"/>.</summary>
    public async Task<ForceReply> ForceAsync(LeaseName name)
    {
        var keys = KeysOf(name);
        return ElectionReplies.Force(await Redis.EvalAsync(
            ForceScript, [keys.Leader, keys.LastLease], [keys.Channel, Redis.PublishCommand]).ConfigureAwait(false));
    }

    internal override string ChannelOf(string key) => new ElectionKeys(key).Channel;

    internal override Task SendReleaseAsync(LeaseRef lease, string token) =>
        Redis.EvalUnboundedAsync(ResignScript, ResignKeys(lease), ResignArgs(lease, token));

    internal override Task<ExtendResult<ElectionLease>> ExtendAsync(LeaseRef lease, string token, ExtendRequest request) =>
        ProclaimAsync(lease, token, new ProclaimRequest(request.TtlMs));

    internal override Task<CheckResult<ElectionLeader>> CheckAsync(LeaseRef lease, string token) => LookAsync(lease, token);

    internal override Task<RedisScriptRunner.Written> SendAcquireAsync(LeaseRef lease, string token, CampaignRequest request)
    {
        var keys = new ElectionKeys(lease.Key);
        var terms = request.Terms;
        return Redis.WriteAsync(
            keys.Leader,
            CampaignScript,
            [keys.Leader, keys.Term, keys.Leases, keys.LastLease],
            [
                token, terms.TtlMs, _fenceRetentionMs + terms.TtlMs, terms.TtlMs + LeaseScripts.LeaseMemory, request.Value,
                terms.IdempotencyKey ?? string.Empty, keys.Channel, Redis.PublishCommand,
                terms.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString,
            ]);
    }

    internal override LeaseAttempt<ElectionLease, ElectionLeader?> DecodeAcquire(LeaseRef lease, string token, CampaignRequest request, RedisScriptRunner.Written written) =>
        ElectionReplies.Campaign(lease.Name.Key, token, request, written);

    private async Task<ExtendResult<ElectionLease>> ProclaimAsync(LeaseRef lease, string token, ProclaimRequest request)
    {
        var keys = new ElectionKeys(lease.Key);
        RedisValue[] values = [token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString, _fenceRetentionMs, keys.Channel, Redis.PublishCommand];
        if (request.Value is not null)
        {
            values = [.. values, request.Value];
        }

        var written = await Redis.WriteAsync(keys.Leader, ProclaimScript, [keys.Leader, keys.Term, keys.Leases, keys.LastLease], values).ConfigureAwait(false);
        var result = ElectionReplies.Proclaim(written.Result, lease.Name.Key, token);
        if (result.Lease is not null)
        {
            await Redis.ConfirmAsync(written).ConfigureAwait(false);
        }

        return result;
    }

    private async Task<CheckResult<ElectionLeader>> LookAsync(LeaseRef lease, RedisValue token)
    {
        var keys = new ElectionKeys(lease.Key);
        return ElectionReplies.Look(
            await Redis.EvalAsync(LookScript, [keys.Leader, keys.LastLease, keys.Leases], [token]).ConfigureAwait(false), lease.Name.Key);
    }

    private static RedisKey[] ResignKeys(LeaseRef lease)
    {
        var keys = new ElectionKeys(lease.Key);
        return [keys.Leader, keys.LastLease, keys.Leases];
    }

    private RedisValue[] ResignArgs(LeaseRef lease, string token) => [token, new ElectionKeys(lease.Key).Channel, Redis.PublishCommand];
}

/// <summary>
/// An election's wake policy: the lock's (a resign, a force, a shortened TTL or the expiry timer wakes the head of the
/// queue and every watch), except that a new value (<see cref="ElectionMessages.Proclaimed"/>) frees nothing and wakes nobody.
/// </summary>
internal sealed class ElectionWake : WakePolicy
{
    public static readonly ElectionWake Instance = new();

    protected override void OnFreed(WaitQueues.KeyQueue queue, RedisValue notice)
    {
        if (notice != ElectionMessages.Proclaimed)
        {
            base.OnFreed(queue, notice);
        }
    }
}
