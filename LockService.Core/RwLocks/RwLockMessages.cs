using System.Buffers.Text;
using LockService.Core.Leases;
using StackExchange.Redis;

namespace LockService.Core.RwLocks;

/// <summary>
/// The notice the read/write lock scripts publish when something frees a place (besides <see cref="LeaseNotices"/>' acquired
/// and shortened): <c>freed what held writer waiting</c>, what being <c>r</c> (a read lease ended), <c>w</c> (the write lease
/// ended) or <c>m</c> (a waiting writer's mark went), then the state the script left: leases held, 1 when a writer holds,
/// writers waiting.
/// </summary>
internal static class RwLockMessages
{
    /// <summary>The first word of the notice.</summary>
    public const string Freed = "freed";

    /// <summary>What a notice says was freed when a waiting writer's mark went (its request ended without the lease).</summary>
    public const string Mark = "m";

    private static readonly RedisValue Prefix = Freed + " ";

    /// <summary>Reads a <see cref="Freed"/> notice; false for any other message.</summary>
    public static bool TryParse(RedisValue message, out RwLockNotice notice)
    {
        notice = default;
        if (!message.StartsWith(Prefix))
        {
            return false;
        }

        ReadOnlySpan<byte> text = (byte[])message!;
        text = text[(Freed.Length + 1)..];
        if (text.Length < 2 || text[1] != (byte)' ' || text[^1] == (byte)' ')
        {
            return false;
        }

        RwFreed? what = text[0] switch
        {
            (byte)'r' => RwFreed.ReadLease,
            (byte)'w' => RwFreed.WriteLease,
            (byte)'m' => RwFreed.WriterMark,
            _ => null,
        };
        text = text[2..];
        if (what is null || !Number(ref text, out var held) || !Number(ref text, out var writer) || writer > 1 || !Number(ref text, out var waiting) || text.Length > 0)
        {
            return false;
        }

        notice = new RwLockNotice(what.Value, held, writer == 1, waiting);
        return true;
    }

    // One decimal number, then a space or the end.
    private static bool Number(ref ReadOnlySpan<byte> text, out int value)
    {
        var end = text.IndexOf((byte)' ');
        var digits = end < 0 ? text : text[..end];
        if (digits.Length == 0 || !Utf8Parser.TryParse(digits, out value, out var used) || used != digits.Length || value < 0)
        {
            value = 0;
            return false;
        }

        text = end < 0 ? [] : text[(end + 1)..];
        return true;
    }
}

/// <summary>What a <see cref="RwLockMessages.Freed"/> notice says was freed.</summary>
internal enum RwFreed
{
    /// <summary>A read lease ended (released, force-released or expired).</summary>
    ReadLease,

    /// <summary>The write lease ended.</summary>
    WriteLease,

    /// <summary>A waiting writer's request ended without the lease, and its mark went.</summary>
    WriterMark,
}

/// <summary>A <see cref="RwLockMessages.Freed"/> notice: what was freed, and the state the script left.</summary>
/// <param name="What">What was freed.</param>
/// <param name="Held">How many leases are held now.</param>
/// <param name="WriterHolds">True when a writer holds now.</param>
/// <param name="WritersWaiting">How many writers wait now (live marks).</param>
internal readonly record struct RwLockNotice(RwFreed What, int Held, bool WriterHolds, int WritersWaiting)
{
    /// <summary>Nobody holds: the next writer may take it, or, with no writer waiting, every reader.</summary>
    public bool Free => Held == 0;

    /// <summary>Readers may come in now: no writer holds and none waits.</summary>
    public bool OpenToReaders => !WriterHolds && WritersWaiting == 0;
}
