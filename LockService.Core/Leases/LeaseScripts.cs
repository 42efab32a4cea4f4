namespace LockService.Core.Leases;

/// <summary>
/// What every kind's Lua scripts share with each other and with C#, as text (a constant interpolated string takes only
/// string constants): how long ended leases are remembered, the states a lease record holds, the error a script answers
/// for data it never writes, and the bound on fencing tokens.
/// </summary>
internal static class LeaseScripts
{
    /// <summary>How long a lease's record outlives its end, and the older-lease records the newest one's joining, in ms (10 minutes).</summary>
    public const string LeaseMemoryMs = "600000";

    /// <summary><see cref="LeaseMemoryMs"/> as a number, for the sums the caller passes to the scripts.</summary>
    public static readonly long LeaseMemory = long.Parse(LeaseMemoryMs, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>How many older-lease records a key keeps (the contract asks for at least 16); the script trims to it.</summary>
    public const string LeaseRecords = "32";

    /// <summary>The last-lease state of a lease not ended by release or force (expired once no longer held).</summary>
    public const string HeldState = "0";

    /// <summary>Lease-record states of leases that ended, and the answer for a token never known; <see cref="EndOf"/> reads them.</summary>
    public const string ReleasedState = "1", ForcedState = "2", ExpiredState = "3", UnknownState = "4";

    /// <summary>
    /// The first word of the error a script answers when a key it reads holds what this service never writes there (a key
    /// of another type, a value written by hand): <c>BADDATA key what</c>, <c>what</c> a constant text of the script. The
    /// script answers it before its first write, or after undoing what it wrote, so no lease is left to nobody.
    /// </summary>
    public const string BadData = "BADDATA";

    /// <summary>What <see cref="BadData"/> says of a key of another type than the script writes there.</summary>
    public const string WrongType = "holds a value of another type than this service keeps there";

    /// <summary>
    /// The largest last fencing token a new one can exceed: 2^53 - 2, so that last + 1 stays below 2^53 (exact in a double,
    /// and in JavaScript). Only a value written by hand reaches it (tokens are microseconds since 1970, near 2^51).
    /// </summary>
    public const string MaxLastFence = "9007199254740990";

    /// <summary>What <see cref="BadData"/> says of a fencing key whose value no token below 2^53 can exceed.</summary>
    public const string FenceTooHigh = "holds a last fencing token that no token below 2^53 can exceed (written by hand); nothing was acquired";

    /// <summary>The reason a script's lease-record state gives (a state it does not know is <see cref="LeaseEnd.Unknown"/>).</summary>
    public static LeaseEnd EndOf(long state) => state switch
    {
        1 => LeaseEnd.Released,
        2 => LeaseEnd.Forced,
        3 => LeaseEnd.Expired,
        _ => LeaseEnd.Unknown,
    };
}
