using System.Threading.Channels;
using LockService.Core.Leases;
using LockService.Core.RwLocks;
using StackExchange.Redis;

namespace LockService.Tests.RwLocks;

/// <summary>
/// The read/write lock scripts run as they are, through <c>ScriptEvaluateAsync</c> on the shared Redis, with their replies
/// read by the store's own decoders: what the scripts promise, apart from any engine.
/// </summary>
internal sealed class RwScripts(IConnectionMultiplexer redis)
{
    public const string Prefix = "rw:";

    /// <summary>The default fence retention (7 days), as the service passes it.</summary>
    public static readonly long FenceRetentionMs = new LeaseOptions().FenceRetentionMs;

    public IDatabase Db { get; } = redis.GetDatabase();

    public static RwLockKeys KeysOf(string key) => RwLockKeys.For(Prefix, LeaseName.Of(key));

    public static string NewToken() => LeaseToken.New();

    public async Task<RwAcquireReply> AcquireAsync(
        string key, RwLockMode mode, string token, long ttlMs = 30_000, string mark = "", long markTtlMs = 2_000,
        string? owner = null, string? idempotencyKey = null, long? maxHoldMs = null)
    {
        RedisValue[] args = owner is null && idempotencyKey is null && maxHoldMs is null
            ? [FenceRetentionMs, token, RwReplies.LetterOf(mode), ttlMs, mark, markTtlMs]
            : [FenceRetentionMs, token, RwReplies.LetterOf(mode), ttlMs, mark, markTtlMs, owner ?? "", idempotencyKey ?? "", maxHoldMs.HasValue ? maxHoldMs.Value : ""];
        return RwAcquireReply.Decode(await RunAsync(RwLockScripts.Acquire, key, args));
    }

    /// <summary>Acquires and asserts that the lease was granted.</summary>
    public async Task<(string Token, RwAcquired Lease)> HoldAsync(string key, RwLockMode mode, long ttlMs = 30_000, string? owner = null, long? maxHoldMs = null)
    {
        var token = NewToken();
        var reply = await AcquireAsync(key, mode, token, ttlMs, owner: owner, maxHoldMs: maxHoldMs);
        return (token, Assert.IsType<RwAcquired>(reply));
    }

    public async Task<RwReleaseReply> ReleaseAsync(string key, string token) =>
        RwReleaseReply.Decode(await RunAsync(RwLockScripts.Release, key, token));

    public async Task<RwForceReleaseReply> ForceReleaseAsync(string key, long? fencingToken = null) =>
        RwForceReleaseReply.Decode(await RunAsync(RwLockScripts.ForceRelease, key, fencingToken.HasValue ? fencingToken.Value : ""));

    public async Task<RwExtendReply> ExtendAsync(string key, string token, long? ttlMs = null) =>
        RwExtendReply.Decode(await RunAsync(RwLockScripts.Extend, key, FenceRetentionMs, token, ttlMs.HasValue ? ttlMs.Value : ""));

    public async Task<RwCheckReply> CheckAsync(string key, string token) =>
        RwCheckReply.Decode(await RunAsync(RwLockScripts.Check, key, token));

    public async Task<RwInspectReply> InspectAsync(string key, int most = 1000) =>
        RwInspectReply.Decode(await RunAsync(RwLockScripts.Inspect, key, most));

    public async Task<RwMarkReply> MarkAsync(string key, string mark, long ttlMs = 2_000) =>
        RwMarkReply.Decode(await RunAsync(RwLockScripts.Mark, key, mark, ttlMs));

    public async Task<RwUnmarkReply> UnmarkAsync(string key, string mark) =>
        RwUnmarkReply.Decode(await RunAsync(RwLockScripts.Unmark, key, mark));

    /// <summary>Runs a script with the name's five keys and the channel and PUBLISH in front of <paramref name="args"/>.</summary>
    public Task<RedisResult> RunAsync(string script, string key, params RedisValue[] args)
    {
        var keys = KeysOf(key);
        return Db.ScriptEvaluateAsync(script, keys.All, [keys.Channel, "PUBLISH", .. args]);
    }

    /// <summary>Every message published on the name's channel from now on.</summary>
    public async Task<ChannelReader<string>> ListenAsync(string key)
    {
        var messages = Channel.CreateUnbounded<string>();
        var queue = await redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(KeysOf(key).Channel));
        queue.OnMessage(m => messages.Writer.TryWrite((string)m.Message!));
        return messages.Reader;
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it returns a value that <paramref name="done"/> accepts, for at most
    /// <paramref name="within"/>; the last value otherwise. For what waits on Redis's clock (expiries), never a bare sleep.
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> attempt, Func<T, bool> done, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var value = await attempt();
            if (done(value) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await Task.Delay(10);
        }
    }
}
