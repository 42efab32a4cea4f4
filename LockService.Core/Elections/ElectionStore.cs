using LockService.Core.Locks;
using StackExchange.Redis;

namespace LockService.Core.Elections;

/// <summary>
/// An election's Redis side: its keys (<see cref="ElectionKeys"/>), its scripts (<see cref="ElectionScripts"/>, and the
/// lock scripts that serve a leader's lease unchanged) and the typed reading of their replies (<see cref="ElectionReplies"/>).
/// Each call is one script, one attempt: waiting for a leadership, watching one and keeping one alive are the lease engine's.
/// </summary>
public sealed class ElectionStore
{
    private static readonly RedisScript CampaignScript = new(ElectionScripts.Campaign);
    private static readonly RedisScript ProclaimScript = new(ElectionScripts.Proclaim);
    private static readonly RedisScript ResignScript = new(LockScripts.Release);
    private static readonly RedisScript LookScript = new(LockScripts.Inspect);
    private static readonly RedisScript ForceScript = new(LockScripts.ForceRelease);

    private readonly RedisScriptRunner _redis;
    private readonly ElectionOptions _options;
    private readonly LockOptions _locks;

    /// <summary>A store over a shared multiplexer, with the elections' prefix and the locks' lease rules.</summary>
    public ElectionStore(IConnectionMultiplexer multiplexer, ElectionOptions options, LockOptions locks, RedisOptions redis, TimeProvider? clock = null)
    {
        _redis = new RedisScriptRunner(multiplexer, redis, clock ?? TimeProvider.System);
        _options = options;
        _locks = locks;
    }

    /// <summary>The bound on one Redis call (<see cref="RedisOptions.TimeoutMs"/>).</summary>
    public TimeSpan Timeout => _redis.Timeout;

    /// <summary>The keys of <paramref name="name"/>.</summary>
    public ElectionKeys KeysOf(LockName name) => ElectionKeys.For(_options.KeyPrefix, name);

    /// <summary>The channel on which every change of <paramref name="name"/> is announced, as this instance subscribes to it.</summary>
    public RedisChannel ChannelOf(LockName name) => _redis.ChannelOf(KeysOf(name).Channel);

    /// <summary>
    /// One campaign attempt with <paramref name="token"/>: leads now in a new term (announced), replays a leadership of the
    /// same Idempotency-Key, or tells who leads.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks the lock rules or the value rule.</exception>
    public async Task<CampaignReply> CampaignAsync(LockName name, string token, CampaignRequest request)
    {
        if (request.Validate(_locks) is { } errors)
        {
            throw errors.ToException();
        }

        request = request.WithDefaults(_locks);
        var keys = KeysOf(name);
        var written = await _redis.WriteAsync(
            keys.Leader,
            CampaignScript,
            [keys.Leader, keys.Term, keys.Leases, keys.LastLease],
            [
                token, request.TtlMs, _locks.FenceRetentionMs + request.TtlMs, request.TtlMs + LockScripts.LeaseMemory, request.Value,
                request.IdempotencyKey ?? string.Empty, keys.Channel, _redis.PublishCommand,
                request.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString,
            ]).ConfigureAwait(false);
        var reply = ElectionReplies.Campaign(written.Result, name.Key, token, request);
        if (reply.Status == CampaignStatus.Elected)
        {
            await _redis.ConfirmAsync(written).ConfigureAwait(false);
        }

        return reply;
    }

    /// <summary>
    /// Extends the leadership of <paramref name="token"/> (to the TTL asked, else the one it campaigned with, cut to its hold
    /// cap) and sets its value when one is given (announced when it differs); or says why the token does not lead.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks the lock rules or the value rule.</exception>
    public async Task<ProclaimReply> ProclaimAsync(LockName name, string token, ProclaimRequest request)
    {
        if (request.Validate(_locks) is { } errors)
        {
            throw errors.ToException();
        }

        var keys = KeysOf(name);
        RedisValue[] values = [token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString, _locks.FenceRetentionMs, keys.Channel, _redis.PublishCommand];
        if (request.Value is not null)
        {
            values = [.. values, request.Value];
        }

        var written = await _redis.WriteAsync(keys.Leader, ProclaimScript, [keys.Leader, keys.Term, keys.Leases, keys.LastLease], values).ConfigureAwait(false);
        var reply = ElectionReplies.Proclaim(written.Result, name.Key, token);
        if (reply.Lease is not null)
        {
            await _redis.ConfirmAsync(written).ConfigureAwait(false);
        }

        return reply;
    }

    /// <summary>Ends the leadership of <paramref name="token"/> (announced: a waiting candidate takes over); or says why it does not lead.</summary>
    public async Task<ResignReply> ResignAsync(LockName name, string token)
    {
        var keys = KeysOf(name);
        return ElectionReplies.Resign(await _redis.EvalAsync(
            ResignScript, [keys.Leader, keys.LastLease, keys.Leases], [token, keys.Channel, _redis.PublishCommand]).ConfigureAwait(false));
    }

    /// <summary>The leader while <paramref name="token"/> leads, else why it does not.</summary>
    public async Task<LookReply> CheckAsync(LockName name, string token) => await LookAsync(name, token).ConfigureAwait(false);

    /// <summary>The current leader (never its token), or null when nobody leads.</summary>
    public async Task<ElectionLeader?> LeaderAsync(LockName name) => (await LookAsync(name, RedisValue.EmptyString).ConfigureAwait(false)).Leader;

    /// <summary>Forces the leader out whoever it is (an operator's act): announced, and its holder's next look says <see cref="LeaseEnd.Forced"/>.</summary>
    public async Task<ForceReply> ForceAsync(LockName name)
    {
        var keys = KeysOf(name);
        return ElectionReplies.Force(await _redis.EvalAsync(
            ForceScript, [keys.Leader, keys.LastLease], [keys.Channel, _redis.PublishCommand]).ConfigureAwait(false));
    }

    private async Task<LookReply> LookAsync(LockName name, RedisValue token)
    {
        var keys = KeysOf(name);
        return ElectionReplies.Look(await _redis.EvalAsync(LookScript, [keys.Leader, keys.LastLease, keys.Leases], [token]).ConfigureAwait(false), name.Key);
    }
}
