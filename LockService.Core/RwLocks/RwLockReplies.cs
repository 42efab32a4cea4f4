using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>The mode of a read/write lock's lease.</summary>
public enum RwLockMode
{
    /// <summary>Shared: any number of read leases at once, while no writer holds or waits.</summary>
    Read,

    /// <summary>Exclusive: one write lease, and nobody else.</summary>
    Write,
}

/// <summary>
/// A lease as a script saw it, never its token.
/// </summary>
/// <param name="Mode">Read or write.</param>
/// <param name="FencingToken">The lease's fencing token (one sequence per name, both modes).</param>
/// <param name="TtlMs">What is left of its TTL (check, inspect), or the TTL an extend granted.</param>
/// <param name="ExpiresAtMs">Its expiry, Redis ms.</param>
/// <param name="AcquiredAtMs">When it was acquired, Redis ms.</param>
/// <param name="MaxHoldMs">Its hold cap from <paramref name="AcquiredAtMs"/>, or null without one.</param>
/// <param name="Owner">Its owner text, or null.</param>
internal sealed record RwHeld(RwLockMode Mode, long FencingToken, long TtlMs, long ExpiresAtMs, long AcquiredAtMs, long? MaxHoldMs, string? Owner);

/// <summary>The reply of <see cref="RwLockScripts.Acquire"/>: <see cref="RwAcquired"/>, <see cref="RwReplayed"/> or <see cref="RwRefused"/>.</summary>
internal abstract record RwAcquireReply
{
    /// <summary>Reads the script's reply.</summary>
    public static RwAcquireReply Decode(RedisResult result)
    {
        var v = (RedisResult[])result!;
        return (long)v[0] switch
        {
            1 => new RwAcquired((long)v[1], (long)v[2], (int)(long)v[3], (long)v[4]),
            2 => new RwReplayed(
                (string)v[1]!,
                RwReplies.ModeOf(v[2]),
                (long)v[3],
                (long)v[4],
                (long)v[8],
                (long)v[5],
                RwReplies.HoldCap((long)v[5], (long)v[6]),
                RwReplies.OwnerOf(v[7])),
            _ => new RwRefused((long)v[1], (int)(long)v[2], (long)v[3] == 1, (int)(long)v[4]),
        };
    }
}

/// <summary>The lease was granted.</summary>
/// <param name="FencingToken">Its fencing token.</param>
/// <param name="NowMs">Redis's clock when it was granted (its acquiredAt).</param>
/// <param name="Held">How many leases are held now, this one included.</param>
/// <param name="EarliestExpiryMs">The earliest expiry among the held leases, in ms from now (when waiters must look again).</param>
internal sealed record RwAcquired(long FencingToken, long NowMs, int Held, long EarliestExpiryMs) : RwAcquireReply;

/// <summary>An acquire with the same idempotency key holds a lease: that lease as it stands now, in its own mode.</summary>
/// <param name="Token">The lease's token.</param>
/// <param name="Mode">Its mode (the retry's own is ignored).</param>
/// <param name="FencingToken">Its fencing token.</param>
/// <param name="TtlMs">What is left of its TTL.</param>
/// <param name="ExpiresAtMs">Its expiry, Redis ms.</param>
/// <param name="AcquiredAtMs">When it was acquired, Redis ms.</param>
/// <param name="MaxHoldMs">Its hold cap, or null.</param>
/// <param name="Owner">Its owner text, or null.</param>
internal sealed record RwReplayed(
    string Token, RwLockMode Mode, long FencingToken, long TtlMs, long ExpiresAtMs, long AcquiredAtMs, long? MaxHoldMs, string? Owner) : RwAcquireReply;

/// <summary>The lease was not granted.</summary>
/// <param name="RetryAfterMs">The earliest moment something could change for this caller: a lease's expiry, or for a read a waiting writer's mark's.</param>
/// <param name="Held">How many leases are held.</param>
/// <param name="WriterHolds">True when a writer holds the name (else readers hold it, or none and a writer waits).</param>
/// <param name="WritersWaiting">How many writers wait (live marks), this caller's own mark included.</param>
internal sealed record RwRefused(long RetryAfterMs, int Held, bool WriterHolds, int WritersWaiting) : RwAcquireReply;

/// <summary>The reply of <see cref="RwLockScripts.Release"/>.</summary>
/// <param name="Released">True when the token held a lease and it is released now.</param>
/// <param name="HeldMs">When released: how long it was held.</param>
/// <param name="Mode">When released: its mode.</param>
/// <param name="Ended">When not released: why the token holds no lease.</param>
internal readonly record struct RwReleaseReply(bool Released, long HeldMs, RwLockMode Mode, LeaseEnd? Ended)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwReleaseReply Decode(RedisResult result)
    {
        var v = (RedisResult[])result!;
        return (long)v[0] == 1
            ? new RwReleaseReply(true, (long)v[1], RwReplies.ModeOf(v[2]), null)
            : new RwReleaseReply(false, 0, default, (LeaseEnd)(long)v[1]);
    }
}

/// <summary>A lease an operator's force-release ended.</summary>
/// <param name="Mode">Its mode.</param>
/// <param name="FencingToken">Its fencing token.</param>
/// <param name="Owner">Its owner text, or null.</param>
/// <param name="HeldMs">How long it was held.</param>
public sealed record RwForcedLease(RwLockMode Mode, long FencingToken, string? Owner, long HeldMs);

/// <summary>The reply of <see cref="RwLockScripts.ForceRelease"/>: the leases it ended, none when nothing matched.</summary>
/// <param name="Released">The leases released.</param>
internal sealed record RwForceReleaseReply(IReadOnlyList<RwForcedLease> Released)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwForceReleaseReply Decode(RedisResult result)
    {
        var v = (RedisResult[])result!;
        var released = new List<RwForcedLease>((int)(long)v[0]);
        for (var i = 1; i + 4 <= v.Length; i += 4)
        {
            released.Add(new RwForcedLease(RwReplies.ModeOf(v[i]), (long)v[i + 1], RwReplies.OwnerOf(v[i + 2]), (long)v[i + 3]));
        }

        return new RwForceReleaseReply(released);
    }
}

/// <summary>The reply of <see cref="RwLockScripts.Extend"/>.</summary>
/// <param name="Held">The lease with the TTL granted, or null when not extended.</param>
/// <param name="Ended">When not extended: why.</param>
internal readonly record struct RwExtendReply(RwHeld? Held, LeaseEnd? Ended)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwExtendReply Decode(RedisResult result)
    {
        var (held, ended) = RwReplies.HeldOrEnded(result);
        return new RwExtendReply(held, ended);
    }
}

/// <summary>The reply of <see cref="RwLockScripts.Check"/>.</summary>
/// <param name="Held">The lease while the token holds it (its TTL what is left), else null.</param>
/// <param name="Ended">When not held: why.</param>
internal readonly record struct RwCheckReply(RwHeld? Held, LeaseEnd? Ended)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwCheckReply Decode(RedisResult result)
    {
        var (held, ended) = RwReplies.HeldOrEnded(result);
        return new RwCheckReply(held, ended);
    }
}

/// <summary>The reply of <see cref="RwLockScripts.Inspect"/>.</summary>
/// <param name="Held">How many leases are held.</param>
/// <param name="WriterHolds">True when the lease held is a write lease.</param>
/// <param name="WritersWaiting">How many writers wait (live marks).</param>
/// <param name="Holders">The leases that expire first, at most as many as asked for.</param>
internal sealed record RwInspectReply(int Held, bool WriterHolds, int WritersWaiting, IReadOnlyList<RwHeld> Holders)
{
    /// <summary>The mode held (read when nothing is).</summary>
    public RwLockMode Mode => WriterHolds ? RwLockMode.Write : RwLockMode.Read;

    /// <summary>True when more leases are held than <see cref="Holders"/> shows.</summary>
    public bool Truncated => Held > Holders.Count;

    /// <summary>Reads the script's reply ({held, writer, waiting, now, then per lease: mode, fence, expires, at, cap, owner}).</summary>
    public static RwInspectReply Decode(RedisResult result)
    {
        var v = (RedisResult[])result!;
        var now = (long)v[3];
        var holders = new List<RwHeld>((v.Length - 4) / 6);
        for (var i = 4; i + 6 <= v.Length; i += 6)
        {
            var (expires, at) = ((long)v[i + 2], (long)v[i + 3]);
            holders.Add(new RwHeld(RwReplies.ModeOf(v[i]), (long)v[i + 1], expires - now, expires, at, RwReplies.HoldCap(at, (long)v[i + 4]), RwReplies.OwnerOf(v[i + 5])));
        }

        return new RwInspectReply((int)(long)v[0], (long)v[1] == 1, (int)(long)v[2], holders);
    }
}

/// <summary>The reply of <see cref="RwLockScripts.Mark"/>.</summary>
/// <param name="WritersWaiting">How many writers wait now (live marks), this one included.</param>
internal readonly record struct RwMarkReply(int WritersWaiting)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwMarkReply Decode(RedisResult result) => new((int)(long)result);
}

/// <summary>The reply of <see cref="RwLockScripts.Unmark"/>.</summary>
/// <param name="Removed">True when the mark was there and is gone now (and announced).</param>
internal readonly record struct RwUnmarkReply(bool Removed)
{
    /// <summary>Reads the script's reply.</summary>
    public static RwUnmarkReply Decode(RedisResult result) => new((long)result == 1);
}

/// <summary>The fields every decoder reads the same way.</summary>
internal static class RwReplies
{
    /// <summary>A mode letter (<see cref="RwLockScripts.Read"/>, <see cref="RwLockScripts.Write"/>).</summary>
    public static RwLockMode ModeOf(RedisResult letter) => (string?)letter switch
    {
        RwLockScripts.Read => RwLockMode.Read,
        RwLockScripts.Write => RwLockMode.Write,
        var other => throw new InvalidOperationException($"A read/write lock script answered the mode '{other}'."),
    };

    /// <summary>
    /// The reply an extend and a check share, <c>{1, mode, fence, ttl, now, at, cap, owner}</c> (ttl: what was granted, or what
    /// is left), or <c>{0, why}</c>.
    /// </summary>
    public static (RwHeld? Held, LeaseEnd? Ended) HeldOrEnded(RedisResult result)
    {
        var v = (RedisResult[])result!;
        if ((long)v[0] != 1)
        {
            return (null, (LeaseEnd)(long)v[1]);
        }

        var (ttl, now, at) = ((long)v[3], (long)v[4], (long)v[5]);
        return (new RwHeld(ModeOf(v[1]), (long)v[2], ttl, now + ttl, at, HoldCap(at, (long)v[6]), OwnerOf(v[7])), null);
    }

    /// <summary>The letter a script takes for <paramref name="mode"/>.</summary>
    public static string LetterOf(RwLockMode mode) => mode == RwLockMode.Write ? RwLockScripts.Write : RwLockScripts.Read;

    // The record keeps the hold cap as an absolute deadline (0: none); bodies give it as ms from acquiredAt.
    public static long? HoldCap(long at, long cap) => cap == 0 ? null : cap - at;

    public static string? OwnerOf(RedisResult value)
    {
        var owner = (string?)value;
        return string.IsNullOrEmpty(owner) ? null : owner;
    }
}
