using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>
/// The read/write lock kind: many readers at once, or one writer alone, and a waiting writer goes before new readers. Each
/// operation is one Lua script (<see cref="RwLockScripts"/>) run atomically with Redis's clock; waiting, watching and keeping
/// a stream's lease alive are the <see cref="LeaseEngine"/>'s, woken as <see cref="RwLockWake"/> says. A writer that waits
/// holds a mark in Redis for as long as its request waits (<see cref="WriterMark"/>). One store per process.
/// </summary>
public sealed class RwLockStore : LeaseStore<RwLockRequest, RwLease, RwLeaseInfo, RwBusy>, IListedLeases<RwLockInfo>
{
    /// <summary>The most leases an inspection describes; more held make it say <see cref="RwLockInfo.Truncated"/>.</summary>
    public const int MaxInspected = 1000;

    /// <summary>
    /// How long a waiting writer's mark lives unless renewed: a dead instance's writer stops holding readers back within it,
    /// which the contract bounds at 2 s. Renewed every <see cref="MarkRenewal"/>, so two renewals can fail before it lapses.
    /// </summary>
    internal static readonly TimeSpan MarkTtl = TimeSpan.FromMilliseconds(1500);

    /// <summary>How often a waiting request renews its writer's mark.</summary>
    internal static readonly TimeSpan MarkRenewal = TimeSpan.FromMilliseconds(500);

    private static readonly RedisScript AcquireScript = new(RwLockScripts.Acquire);
    private static readonly RedisScript ReleaseScript = new(RwLockScripts.Release);
    private static readonly RedisScript ForceReleaseScript = new(RwLockScripts.ForceRelease);
    private static readonly RedisScript ExtendScript = new(RwLockScripts.Extend);
    private static readonly RedisScript CheckScript = new(RwLockScripts.Check);
    private static readonly RedisScript InspectScript = new(RwLockScripts.Inspect);
    private static readonly RedisScript MarkScript = new(RwLockScripts.Mark);
    private static readonly RedisScript UnmarkScript = new(RwLockScripts.Unmark);

    private static readonly RedisValue MarkTtlMs = (long)MarkTtl.TotalMilliseconds;

    private readonly RedisValue _fenceRetentionMs;

    /// <summary>Creates the read/write lock kind over <paramref name="engine"/>, its keys under <see cref="RwLockOptions.KeyPrefix"/>.</summary>
    public RwLockStore(LeaseEngine engine, RwLockOptions options)
        : base(engine, LeaseKind.RwLock, options.KeyPrefix, RwLockWake.Instance)
    {
        _fenceRetentionMs = engine.Limits.FenceRetentionMs;
    }

    /// <inheritdoc />
    public override RequestErrors? Validate(RwLockRequest request, bool stream = false) => request.Validate(Limits, stream);

    /// <inheritdoc />
    public override async Task<ReleaseResult> ReleaseAsync(LeaseRef lease, string token)
    {
        var reply = RwReleaseReply.Decode(await SendReleaseAsync(lease, token, bounded: true).ConfigureAwait(false));
        return reply.Released ? new ReleaseResult(true, null, reply.HeldMs) : new ReleaseResult(false, reply.Ended, 0);
    }

    /// <summary>
    /// Releases every lease of the name, or with <paramref name="fencingToken"/> the one lease that has it, whoever holds them
    /// (an operator's force-release): their places go to the waiters, and each holder's next check, extend, release or watch
    /// says <see cref="LeaseEnd.Forced"/>. Empty when nothing was released.
    /// </summary>
    public async Task<IReadOnlyList<RwForcedLease>> ForceReleaseAsync(LeaseName name, long? fencingToken = null)
    {
        var keys = KeysOf(RefOf(name));
        var reply = RwForceReleaseReply.Decode(await Redis.EvalAsync(
            ForceReleaseScript, keys.All, Args(keys, fencingToken is long fence ? fence : RedisValue.EmptyString)).ConfigureAwait(false));
        return reply.Released;
    }

    /// <summary>The holders (never their tokens), at most <see cref="MaxInspected"/> of them, and the writers waiting; null when nobody holds it.</summary>
    public async Task<RwLockInfo?> InspectAsync(LeaseName name)
    {
        var keys = KeysOf(RefOf(name));
        var reply = RwInspectReply.Decode(await Redis.EvalAsync(InspectScript, keys.All, Args(keys, MaxInspected)).ConfigureAwait(false));
        if (reply.Held == 0)
        {
            return null;
        }

        return new RwLockInfo(name.Key, reply.Mode, [.. reply.Holders.Select(h => InfoOf(name.Key, h))], reply.WritersWaiting, reply.Truncated);
    }

    internal override string ChannelOf(string key) => new RwLockKeys(key).Channel;

    internal override Task SendReleaseAsync(LeaseRef lease, string token) => SendReleaseAsync(lease, token, bounded: false);

    internal override async Task<ExtendResult<RwLease>> ExtendAsync(LeaseRef lease, string token, ExtendRequest request)
    {
        var keys = KeysOf(lease);
        var written = await Redis.WriteAsync(
            keys.Held,
            ExtendScript,
            keys.All,
            Args(keys, _fenceRetentionMs, token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString)).ConfigureAwait(false);
        var reply = RwExtendReply.Decode(written.Result);
        if (reply.Held is not { } held)
        {
            return new ExtendResult<RwLease>(null, reply.Ended);
        }

        await Redis.ConfirmAsync(written).ConfigureAwait(false);
        return new ExtendResult<RwLease>(
            new RwLease(lease.Name.Key, token, held.Mode, held.FencingToken, held.TtlMs, Ms(held.ExpiresAtMs), Ms(held.AcquiredAtMs), held.MaxHoldMs, held.Owner),
            null);
    }

    internal override async Task<CheckResult<RwLeaseInfo>> CheckAsync(LeaseRef lease, string token)
    {
        var keys = KeysOf(lease);
        var reply = RwCheckReply.Decode(await Redis.EvalAsync(CheckScript, keys.All, Args(keys, token)).ConfigureAwait(false));
        return reply.Held is { } held ? new CheckResult<RwLeaseInfo>(InfoOf(lease.Name.Key, held), null) : new CheckResult<RwLeaseInfo>(null, reply.Ended);
    }

    internal override Task<RedisScriptRunner.Written> SendAcquireAsync(LeaseRef lease, string token, RwLockRequest request)
    {
        var keys = KeysOf(lease);
        var terms = request.Terms;
        var mode = request.Mode!.Value;

        // A writer that will wait marks itself at its first refusal, in the same script, so that no reader slips in between
        // the refusal and the mark; its token names the mark (one per request).
        var mark = mode == RwLockMode.Write && terms.WaitMs > 0 ? (RedisValue)token : RedisValue.EmptyString;
        var args = terms.Owner is null && terms.IdempotencyKey is null && terms.MaxHoldMs is null
            ? Args(keys, _fenceRetentionMs, token, RwReplies.LetterOf(mode), terms.TtlMs, mark, MarkTtlMs)
            : Args(
                keys, _fenceRetentionMs, token, RwReplies.LetterOf(mode), terms.TtlMs, mark, MarkTtlMs, terms.Owner ?? string.Empty,
                terms.IdempotencyKey ?? string.Empty, terms.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString);
        return Redis.WriteAsync(keys.Held, AcquireScript, keys.All, args);
    }

    internal override LeaseAttempt<RwLease, RwBusy> DecodeAcquire(LeaseRef lease, string token, RwLockRequest request, RedisScriptRunner.Written written)
    {
        var terms = request.Terms;
        switch (RwAcquireReply.Decode(written.Result))
        {
            case RwAcquired granted:
                // The queue's head looks again at the earliest expiry among the holders, which may now be this lease.
                var held = new RwLease(
                    lease.Name.Key, token, request.Mode!.Value, granted.FencingToken, terms.TtlMs, Ms(granted.NowMs + terms.TtlMs), Ms(granted.NowMs), terms.MaxHoldMs, terms.Owner);
                return LeaseAttempt<RwLease, RwBusy>.Granted(held, granted.EarliestExpiryMs, -1, written);
            case RwReplayed replay:
                var original = new RwLease(
                    lease.Name.Key, replay.Token, replay.Mode, replay.FencingToken, replay.TtlMs, Ms(replay.ExpiresAtMs), Ms(replay.AcquiredAtMs), replay.MaxHoldMs, replay.Owner);
                return LeaseAttempt<RwLease, RwBusy>.Replayed(original, -1);
            case RwRefused refused:
                return LeaseAttempt<RwLease, RwBusy>.Taken(refused.RetryAfterMs, new RwBusy(refused.WriterHolds, refused.Held, refused.WritersWaiting));
            default:
                throw new InvalidOperationException("The acquire script answered a reply of no known shape.");
        }
    }

    /// <summary>A waiting writer's request holds a mark while it waits; readers' requests hold nothing.</summary>
    internal override IWaitClaim? ClaimWhileWaiting(LeaseRef lease, string token, RwLockRequest request) =>
        request.Mode == RwLockMode.Write ? new WriterMark(this, KeysOf(lease), token, Engine.Clock) : null;

    /// <summary>Adds or renews a waiting writer's mark.</summary>
    internal async Task<RwMarkReply> MarkAsync(RwLockKeys keys, string mark) =>
        RwMarkReply.Decode(await Redis.EvalAsync(MarkScript, keys.All, Args(keys, mark, MarkTtlMs)).ConfigureAwait(false));

    /// <summary>Removes a waiting writer's mark (announced, so the readers it held back are woken).</summary>
    internal async Task<RwUnmarkReply> UnmarkAsync(RwLockKeys keys, string mark) =>
        RwUnmarkReply.Decode(await Redis.EvalAsync(UnmarkScript, keys.All, Args(keys, mark)).ConfigureAwait(false));

    private static RwLockKeys KeysOf(LeaseRef lease) => new(lease.Key);

    private static RwLeaseInfo InfoOf(string key, RwHeld held) =>
        new(key, held.Mode, held.FencingToken, held.Owner, held.TtlMs, Ms(held.ExpiresAtMs), Ms(held.AcquiredAtMs), held.MaxHoldMs);

    private Task<RedisResult> SendReleaseAsync(LeaseRef lease, string token, bool bounded)
    {
        var keys = KeysOf(lease);
        return bounded
            ? Redis.EvalAsync(ReleaseScript, keys.All, Args(keys, token))
            : Redis.EvalUnboundedAsync(ReleaseScript, keys.All, Args(keys, token));
    }

    // Every script's ARGV starts with the notice channel and the publish command.
    private RedisValue[] Args(RwLockKeys keys, params RedisValue[] more) => [keys.Channel, Redis.PublishCommand, .. more];

    // Times in bodies are Redis's clock (ms from TIME inside the script), whichever instance answers.
    private static DateTimeOffset Ms(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);
}
