using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// Runs an engine's Lua scripts the way every engine must: each call bounded by <see cref="RedisOptions.TimeoutMs"/>, a
/// write confirmed on <see cref="RedisOptions.ReplicaAcks"/> replicas (WAIT) on the very server it ran on, and notices
/// published on the key's own shard (SPUBLISH, Redis 7+) or with plain PUBLISH before. Both engines run on it.
/// </summary>
internal sealed class RedisScriptRunner
{
    // Time for WAIT's own answer to arrive after its server-side timeout, before the call counts as timed out.
    private static readonly TimeSpan WaitReplySlack = TimeSpan.FromMilliseconds(200);

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IDatabase _db;
    private readonly TimeSpan _timeout;
    private readonly int _replicaAcks;
    private readonly TimeProvider _clock;
    private int _shardedPubSub = -1;

    public RedisScriptRunner(IConnectionMultiplexer multiplexer, RedisOptions redis, TimeProvider clock)
    {
        _multiplexer = multiplexer;
        _db = multiplexer.GetDatabase();
        _timeout = TimeSpan.FromMilliseconds(redis.TimeoutMs);
        _replicaAcks = redis.ReplicaAcks;
        _clock = clock;
    }

    public TimeSpan Timeout => _timeout;

    /// <summary>
    /// One script call, bounded: StackExchange.Redis's own timeout is checked on its heartbeat, and let a call run 3.3 s
    /// with a 1 s bound during a Sentinel failover. Not an async method: callers await the task itself.
    /// </summary>
    public Task<RedisResult> EvalAsync(RedisScript script, RedisKey[] keys, RedisValue[] values) =>
        script.EvaluateAsync(_db, keys, values).WaitAsync(_timeout);

    /// <summary>One script call without the bound: for work sent behind a call that timed out, which may take longer.</summary>
    public Task<RedisResult> EvalUnboundedAsync(RedisScript script, RedisKey[] keys, RedisValue[] values) =>
        script.EvaluateAsync(_db, keys, values);

    /// <summary>A PING, bounded like a script call.</summary>
    public async Task PingAsync() => await _db.PingAsync().WaitAsync(_timeout).ConfigureAwait(false);

    /// <summary>
    /// A write whose success <see cref="ConfirmAsync"/> must then confirm on replicas. With replica acks the script goes to
    /// the server that owns <paramref name="routingKey"/>, chosen once, so that the WAIT goes to the same one: through the
    /// database, a failover between the two could have the new master "confirm" a write it never had.
    /// </summary>
    public async Task<Written> WriteAsync(string routingKey, RedisScript script, RedisKey[] keys, RedisValue[] values)
    {
        var started = _clock.GetTimestamp();
        if (_replicaAcks <= 0)
        {
            return new Written(await EvalAsync(script, keys, values).ConfigureAwait(false), null, started);
        }

        IServer server;
        try
        {
            // The RedisKey overload: a plain string would be taken for "host:port".
            server = _multiplexer.GetServer((RedisKey)routingKey);
        }
        catch (InvalidOperationException)
        {
            throw new LockStoreUnavailableException("No connected Redis master owns this key.");
        }

        List<object> args = [script.HexHash, keys.Length, .. keys.Select(k => (object)k), .. values.Select(v => (object)v)];
        try
        {
            return new Written(await server.ExecuteAsync("EVALSHA", args).WaitAsync(_timeout).ConfigureAwait(false), server, started);
        }
        catch (RedisServerException ex) when (RedisScript.IsNoScript(ex))
        {
            args[0] = script.Text;
            return new Written(await server.ExecuteAsync("EVAL", args).WaitAsync(_timeout).ConfigureAwait(false), server, started);
        }
    }

    /// <summary>
    /// With Redis:ReplicaAcks set, a write that did not reach enough replicas does not count (a failover to a replica that
    /// never saw it could hand the same place out twice). WAIT gets what is left of the timeout after the write, never 0
    /// (WAIT 0 blocks until the replicas answer), so the whole call stays within Redis:TimeoutMs plus a second.
    /// </summary>
    public async Task ConfirmAsync(Written written)
    {
        if (written.Server is not { } server)
        {
            return;
        }

        var waitMs = Math.Max(1, (long)(_timeout - _clock.GetElapsedTime(written.Started)).TotalMilliseconds);
        long acked;
        try
        {
            acked = (long)await server.ExecuteAsync("WAIT", _replicaAcks, waitMs)
                .WaitAsync(TimeSpan.FromMilliseconds(waitMs) + WaitReplySlack).ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            // "WAIT cannot be used with replica instances": the node was demoted between the write and the WAIT.
            throw new LockStoreUnavailableException("The Redis node was demoted before the write could be confirmed on replicas.");
        }

        if (acked < _replicaAcks)
        {
            throw new LockStoreUnavailableException(
                $"Only {acked} of the {_replicaAcks} replicas required by Redis:ReplicaAcks acknowledged the write.");
        }
    }

    /// <summary>The pub/sub channel a script publishes on with <see cref="PublishCommand"/>.</summary>
    public RedisChannel ChannelOf(string name) => Sharded ? RedisChannel.Sharded(name) : RedisChannel.Literal(name);

    /// <summary>SPUBLISH on Redis 7+ (the notice stays on the key's shard, which Redis Cluster needs), else PUBLISH.</summary>
    public string PublishCommand => Sharded ? "SPUBLISH" : "PUBLISH";

    // Decided once, from the first connected server, so that this instance's publishers and subscribers always agree.
    private bool Sharded
    {
        get
        {
            var known = Volatile.Read(ref _shardedPubSub);
            if (known >= 0)
            {
                return known == 1;
            }

            var server = _multiplexer.GetServers().FirstOrDefault(s => s.IsConnected)
                ?? throw new LockStoreUnavailableException("No Redis server is connected.");
            Interlocked.CompareExchange(ref _shardedPubSub, server.Version >= new Version(7, 0) ? 1 : 0, -1);
            return Volatile.Read(ref _shardedPubSub) == 1;
        }
    }

    /// <summary>A script's answer, and where and when it ran (for <see cref="ConfirmAsync"/>).</summary>
    public readonly record struct Written(RedisResult Result, IServer? Server, long Started);
}
