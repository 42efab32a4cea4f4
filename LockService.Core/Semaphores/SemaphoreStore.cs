using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.Semaphores;

/// <summary>
/// The semaphore kind: up to a caller's <c>limit</c> holders at once, each with its own permit (token, TTL, slot, fencing
/// token per slot). Every operation is one Lua script (<see cref="SemaphoreScripts"/>) run atomically with Redis's clock;
/// waiting, watching and keeping a stream's permit alive are the <see cref="LeaseEngine"/>'s, woken by the places a
/// release, a force-release or an expiry frees (<see cref="SemaphoreWake"/>). One store per process.
/// </summary>
public sealed class SemaphoreStore : LeaseStore<PermitRequest, PermitLease, PermitInfo, SemaphoreBusy>, IListedLeases<SemaphoreInfo>
{
    /// <summary>The most permits an inspection describes; more held make it say <see cref="SemaphoreInfo.Truncated"/>.</summary>
    public const int MaxInspected = 1000;

    private static readonly RedisScript AcquireScript = new(SemaphoreScripts.Acquire);
    private static readonly RedisScript ReleaseScript = new(SemaphoreScripts.Release);
    private static readonly RedisScript ForceReleaseScript = new(SemaphoreScripts.ForceRelease);
    private static readonly RedisScript ExtendScript = new(SemaphoreScripts.Extend);
    private static readonly RedisScript InspectScript = new(SemaphoreScripts.Inspect);
    private static readonly RedisScript CheckScript = new(SemaphoreScripts.Check);

    private readonly SemaphoreOptions _options;
    private readonly RedisValue _fenceRetentionMs;

    /// <summary>Creates the semaphore kind over <paramref name="engine"/>, its keys under <see cref="SemaphoreOptions.KeyPrefix"/>.</summary>
    public SemaphoreStore(LeaseEngine engine, SemaphoreOptions options)
        : base(engine, LeaseKind.Semaphore, options.KeyPrefix, SemaphoreWake.Instance)
    {
        _options = options;
        _fenceRetentionMs = engine.Limits.FenceRetentionMs;
    }

    /// <inheritdoc />
    public override RequestErrors? Validate(PermitRequest request, bool stream = false) => request.Validate(Limits, _options, stream);

    /// <inheritdoc />
    public override async Task<ReleaseResult> ReleaseAsync(LeaseRef lease, string token)
    {
        var reply = (RedisResult[])(await SendReleaseAsync(lease, token, bounded: true).ConfigureAwait(false))!;

        // {1, held ms} or {0, why}
        return (long)reply[0] == 1
            ? new ReleaseResult(true, null, (long)reply[1])
            : new ReleaseResult(false, LeaseScripts.EndOf((long)reply[1]), 0);
    }

    /// <summary>
    /// Releases the permit in <paramref name="slot"/>, whoever holds it (an operator's force-release): its place goes to a
    /// waiter, and its holder's next check, extend, release or watch says <see cref="LeaseEnd.Forced"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="slot"/> is outside 0 .. <see cref="SemaphoreOptions.MaxLimit"/> - 1: no permit can hold it.</exception>
    public async Task<PermitForceReleaseResult> ForceReleaseAsync(LeaseName name, int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, _options.MaxLimit);
        var keys = new SemaphoreKeys(RefOf(name).Key);
        var reply = (RedisResult[])(await Redis.EvalAsync(ForceReleaseScript, keys.All, Args(keys, _fenceRetentionMs, slot)).ConfigureAwait(false))!;

        // {1, fence, owner, held ms, limit} or {0}
        return (long)reply[0] == 1
            ? new PermitForceReleaseResult(true, (long)reply[1], OwnerOf(reply[2]), (long)reply[3], (int)(long)reply[4])
            : default;
    }

    /// <summary>The held permits (never their tokens), at most <see cref="MaxInspected"/> of them; null when none is held.</summary>
    public async Task<SemaphoreInfo?> InspectAsync(LeaseName name)
    {
        var keys = new SemaphoreKeys(RefOf(name).Key);
        var reply = (RedisResult[])(await Redis.EvalAsync(InspectScript, keys.All, Args(keys, MaxInspected)).ConfigureAwait(false))!;
        return DecodeInspect(name.Key, reply);
    }

    /// <summary>Decodes the inspect script's reply: {held, now ms, then per permit: slot, fence, expires, at, cap, limit, owner}.</summary>
    internal static SemaphoreInfo? DecodeInspect(string key, RedisResult[] reply)
    {
        var held = (int)(long)reply[0];
        if (held == 0)
        {
            return null;
        }

        var now = (long)reply[1];
        var permits = new List<PermitInfo>((reply.Length - 2) / 7);
        for (var i = 2; i + 7 <= reply.Length; i += 7)
        {
            var (expires, at) = ((long)reply[i + 2], (long)reply[i + 3]);
            permits.Add(new PermitInfo(
                key, (int)(long)reply[i], (long)reply[i + 1], (int)(long)reply[i + 5], OwnerOf(reply[i + 6]),
                expires - now, Ms(expires), Ms(at), HoldCap(at, (long)reply[i + 4])));
        }

        permits.Sort((a, b) => a.Slot.CompareTo(b.Slot));
        return new SemaphoreInfo(key, held, permits, held > permits.Count);
    }

    internal override string ChannelOf(string key) => new SemaphoreKeys(key).Channel;

    internal override Task SendReleaseAsync(LeaseRef lease, string token) => SendReleaseAsync(lease, token, bounded: false);

    internal override async Task<ExtendResult<PermitLease>> ExtendAsync(LeaseRef lease, string token, ExtendRequest request)
    {
        var keys = new SemaphoreKeys(lease.Key);
        var written = await Redis.WriteAsync(
            keys.Semaphore,
            ExtendScript,
            keys.All,
            Args(keys, _fenceRetentionMs, token, request.TtlMs.HasValue ? request.TtlMs.Value : RedisValue.EmptyString)).ConfigureAwait(false);
        var reply = (RedisResult[])written.Result!;

        // {1, slot, fence, ttl, now, at, cap, limit, owner} or {0, why}
        if ((long)reply[0] != 1)
        {
            return new ExtendResult<PermitLease>(null, LeaseScripts.EndOf((long)reply[1]));
        }

        await Redis.ConfirmAsync(written).ConfigureAwait(false);
        var (ttl, now, at, cap) = ((long)reply[3], (long)reply[4], (long)reply[5], (long)reply[6]);
        return new ExtendResult<PermitLease>(
            new PermitLease(lease.Name.Key, token, (int)(long)reply[1], (long)reply[2], (int)(long)reply[7], ttl, Ms(now + ttl), Ms(at), HoldCap(at, cap), OwnerOf(reply[8])),
            null);
    }

    internal override async Task<CheckResult<PermitInfo>> CheckAsync(LeaseRef lease, string token)
    {
        var keys = new SemaphoreKeys(lease.Key);
        var reply = (RedisResult[])(await Redis.EvalAsync(CheckScript, keys.All, Args(keys, token)).ConfigureAwait(false))!;

        // {1, slot, fence, ms left, now, at, cap, limit, owner} or {0, why}
        if ((long)reply[0] != 1)
        {
            return new CheckResult<PermitInfo>(null, LeaseScripts.EndOf((long)reply[1]));
        }

        var (left, now, at) = ((long)reply[3], (long)reply[4], (long)reply[5]);
        return new CheckResult<PermitInfo>(
            new PermitInfo(lease.Name.Key, (int)(long)reply[1], (long)reply[2], (int)(long)reply[7], OwnerOf(reply[8]), left, Ms(now + left), Ms(at), HoldCap(at, (long)reply[6])),
            null);
    }

    internal override Task<RedisScriptRunner.Written> SendAcquireAsync(LeaseRef lease, string token, PermitRequest request)
    {
        var keys = new SemaphoreKeys(lease.Key);
        var (terms, limit) = (request.Terms, request.Limit!.Value);
        var args = terms.Owner is null && terms.IdempotencyKey is null && terms.MaxHoldMs is null
            ? Args(keys, _fenceRetentionMs, token, terms.TtlMs, limit)
            : Args(
                keys, _fenceRetentionMs, token, terms.TtlMs, limit, terms.Owner ?? string.Empty, terms.IdempotencyKey ?? string.Empty,
                terms.MaxHoldMs is long maxHold ? maxHold : RedisValue.EmptyString);
        return Redis.WriteAsync(keys.Semaphore, AcquireScript, keys.All, args);
    }

    internal override LeaseAttempt<PermitLease, SemaphoreBusy> DecodeAcquire(LeaseRef lease, string token, PermitRequest request, RedisScriptRunner.Written written)
    {
        var reply = (RedisResult[])written.Result!;
        var terms = request.Terms;
        switch ((long)reply[0])
        {
            case 1:
                // {1, slot, fence, now, earliest expiry ms, held now}: the queue's timer follows the earliest permit, which
                // may now be this one, and the count held tells the policy whether the next waiter fits too.
                var now = (long)reply[3];
                var granted = new PermitLease(
                    lease.Name.Key, token, (int)(long)reply[1], (long)reply[2], (int)request.Limit!.Value, terms.TtlMs, Ms(now + terms.TtlMs), Ms(now), terms.MaxHoldMs, terms.Owner);
                return LeaseAttempt<PermitLease, SemaphoreBusy>.Granted(granted, (long)reply[4], (long)reply[5], written);
            case 2:
                // {2, token, slot, fence, ms left, at, cap, limit, owner, expiry}: the original permit as it stands now.
                var (left, at) = ((long)reply[4], (long)reply[5]);
                var replay = new PermitLease(
                    lease.Name.Key, (string)reply[1]!, (int)(long)reply[2], (long)reply[3], (int)(long)reply[7], left, Ms((long)reply[9]), Ms(at), HoldCap(at, (long)reply[6]), OwnerOf(reply[8]));
                return LeaseAttempt<PermitLease, SemaphoreBusy>.Replayed(replay, -1);
            default:
                // {0, earliest expiry ms, held}
                return LeaseAttempt<PermitLease, SemaphoreBusy>.Taken(Math.Max(0, (long)reply[1]), new SemaphoreBusy((int)(long)reply[2]));
        }
    }

    private Task<RedisResult> SendReleaseAsync(LeaseRef lease, string token, bool bounded)
    {
        var keys = new SemaphoreKeys(lease.Key);
        return bounded
            ? Redis.EvalAsync(ReleaseScript, keys.All, Args(keys, _fenceRetentionMs, token))
            : Redis.EvalUnboundedAsync(ReleaseScript, keys.All, Args(keys, _fenceRetentionMs, token));
    }

    // Every script's ARGV starts with the notice channel and the publish command.
    private RedisValue[] Args(SemaphoreKeys keys, params RedisValue[] more) => [keys.Channel, Redis.PublishCommand, .. more];

    // Times in bodies are Redis's clock (ms from TIME inside the script), whichever instance answers.
    private static DateTimeOffset Ms(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs);

    // The record keeps the hold cap as an absolute deadline (0: none); bodies give it as ms from acquiredAt.
    private static long? HoldCap(long at, long cap) => cap == 0 ? null : cap - at;
}

/// <summary>
/// Whom a semaphore's notices wake. A notice of places freed (<see cref="SemaphoreMessages.Freed"/>) wakes as many waiters at
/// the front as places were freed, in arrival order, passing over those whose own limit the semaphore's count still
/// reaches; a waiter may try when no waiter ahead has a limit as high (none of them can be let in before it); a waiter
/// that takes a place with room left wakes the next.
/// </summary>
internal sealed class SemaphoreWake : WakePolicy
{
    public static readonly SemaphoreWake Instance = new();

    public override bool MayTry(WaitQueues.Waiter waiter)
    {
        for (var earlier = waiter.Node!.Previous; earlier is not null; earlier = earlier.Previous)
        {
            if (earlier.Value.Claim >= waiter.Claim)
            {
                return false;
            }
        }

        return true;
    }

    public override void OnLeave(WaitQueues.KeyQueue queue, WaitQueues.Waiter waiter, bool wasHead, bool acquired)
    {
        var stateAfter = waiter.StateAfter;
        if (acquired && stateAfter >= 0 && !waiter.Pending)
        {
            // With room left after this one (places freed while those behind slept), the next that can use it is woken.
            WakeWaiters(queue, 1, stateAfter);
        }
        else if (acquired && stateAfter >= 0)
        {
            // A wake-up that reached it while it was busy trying, and that it will not use. Either a notice, which may have
            // been for a place freed after it took its own: the count that notice gave, when lower, decides who is next. Or
            // the expiry timer's (expiries publish nothing), fired between its try and now: the head that is left looks, and
            // its try re-arms the timer if nothing expired yet; without this, of several places expiring a few ms apart,
            // all but the first would reach their waiters only at their deadlines.
            WakeWaiters(queue, 1, Math.Min(stateAfter, queue.LastNoticeState));
            queue.Waiters.First?.Value.Signal();
        }
        else if (!acquired)
        {
            // It may have been one of several woken: its wake-up goes to the first waiter that can use what it could (a
            // limit as high), else to the head.
            var next = queue.Waiters.FirstOrDefault(w => w.Claim >= waiter.Claim) ?? queue.Waiters.First?.Value;
            next?.Signal();
        }
    }

    protected override void OnFreed(WaitQueues.KeyQueue queue, RedisValue notice)
    {
        if (SemaphoreMessages.TryParseFreed(notice, out var places, out var held))
        {
            queue.LastNoticeState = held;
            WakeWaiters(queue, places, held);
            queue.WakeWatchers();
            return;
        }

        base.OnFreed(queue, notice);
    }

    // Only a waiter at the front (none ahead with a limit as high) is woken: a notice can arrive after the waiters it freed
    // places for took them and left, and then wakes those behind them, so a woken waiter with another ahead that can use
    // the same place would take it first, and the one ahead would sleep to its deadline. The one ahead wakes the next when
    // it leaves.
    private static void WakeWaiters(WaitQueues.KeyQueue queue, long places, long held)
    {
        long ahead = 0;
        for (var node = queue.Waiters.First; node is not null && places > 0; node = node.Next)
        {
            var limit = node.Value.Claim;
            if (limit > held && limit > ahead)
            {
                node.Value.Signal();
                places--;
            }

            ahead = Math.Max(ahead, limit);
        }
    }
}
