using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.RwLocks;
using LockService.Core.Semaphores;

namespace LockService.Api.Locks;

/// <summary>What a parameter holds: a whole number of milliseconds, a count, or free text.</summary>
internal enum ParameterKind
{
    Milliseconds,
    Text,
    Count,
}

/// <summary>Which field of <see cref="LeaseParameters"/> a parameter fills.</summary>
internal enum ParameterField
{
    TtlMs,
    WaitMs,
    Owner,
    MaxHoldMs,
    Limit,
    Mode,
    Prefix,
    Cursor,
    Value,
}

/// <summary>A text parameter's rule: adds an error and returns false when <paramref name="text"/> breaks it.</summary>
internal delegate bool TextRule(string text, ref RequestErrors? errors);

/// <summary>
/// What a parameter's description states: the limits of the running configuration (the same options the engines enforce)
/// and what the operation holds ("lock" or "permit").
/// </summary>
internal sealed record ParameterLimits(LeaseOptions Locks, SemaphoreOptions Semaphores, string Subject);

/// <summary>
/// One parameter a lease operation takes, as query parameter or JSON body member. The parser and the OpenAPI
/// document (query parameters and body schema) both read it, so they cannot disagree. Its rules live in Core
/// (<see cref="LeaseRules"/>); <see cref="Describe"/> states them from the same options. A text parameter's
/// <see cref="Rule"/> is checked as it is read: bad text must not reach the engine, which would throw.
/// </summary>
internal sealed record LeaseParameter(
    string Name, ParameterKind Kind, ParameterField Field, Func<ParameterLimits, string> Describe, TextRule? Rule = null, int MinLength = 1, int MaxLength = LeaseRules.MaxOwnerLength)
{
    public static readonly LeaseParameter TtlMs = new(LeaseRules.TtlMs, ParameterKind.Milliseconds, ParameterField.TtlMs, l =>
        $"How long the {l.Subject} lives unless released or extended, in ms: {LeaseRules.MinTtlMs} .. {l.Locks.MaxTtlMs} (Locks:MaxTtlMs); default {l.Locks.DefaultTtlMs} (Locks:DefaultTtlMs).");

    public static readonly LeaseParameter ExtendTtlMs = new(LeaseRules.TtlMs, ParameterKind.Milliseconds, ParameterField.TtlMs, l =>
        $"The new remaining TTL in ms: {LeaseRules.MinTtlMs} .. {l.Locks.MaxTtlMs} (Locks:MaxTtlMs); default: the TTL the {l.Subject} was acquired with. Cut to what is left of the {l.Subject}'s maxHoldMs.");

    public static readonly LeaseParameter WaitMs = new(LeaseRules.WaitMs, ParameterKind.Milliseconds, ParameterField.WaitMs, l =>
        $"How long to wait in the server for a {(l.Subject == "lock" ? "held lock" : "free place")}, in ms: 0 .. {l.Locks.MaxWaitMs} (Locks:MaxWaitMs); default 0 (do not wait).");

    public static readonly LeaseParameter WatchMs = new(LeaseRules.WaitMs, ParameterKind.Milliseconds, ParameterField.WaitMs, l =>
        $"Watch: wait in the server up to this many ms (0 .. {l.Locks.MaxWaitMs}) for this token to stop holding the {l.Subject}; 404 with its reason at once when it does, 200 when the wait runs out. Default 0 (answer at once).");

    public static readonly LeaseParameter Owner = new(LeaseRules.Owner, ParameterKind.Text, ParameterField.Owner, _ =>
        $"Free text shown by inspection (who holds it): 1-{LeaseRules.MaxOwnerLength} characters, no control characters.", LeaseRules.CheckOwner);

    public static readonly LeaseParameter MaxHoldMs = new(LeaseRules.MaxHoldMs, ParameterKind.Milliseconds, ParameterField.MaxHoldMs, l =>
        $"The longest this {l.Subject} may be held in total, in ms: ttlMs .. {l.Locks.MaxHoldMs} (Locks:MaxHoldMs); no extend takes its expiry past acquiredAt + maxHoldMs. "
        + (l.Locks.DefaultMaxHoldMs > 0 ? $"Default {l.Locks.DefaultMaxHoldMs} (Locks:DefaultMaxHoldMs; a longer ttlMs is cut to it)." : "Default: no cap (Locks:DefaultMaxHoldMs is 0)."));

    public static readonly LeaseParameter ListPrefix = new("prefix", ParameterKind.Text, ParameterField.Prefix, _ =>
        "List only the names that start with this (up to 200 characters of a key's); default: every name.", CheckPrefix, MinLength: 0, MaxLength: LeaseName.MaxLength);

    public static readonly LeaseParameter ListLimit = new("limit", ParameterKind.Count, ParameterField.Limit, _ =>
        $"The most names on one page, 1 .. {LeaseEngine.MaxListLimit}; default {ListDefaultLimit}. A page may hold fewer, even none, with a cursor.");

    public static readonly LeaseParameter ListCursor = new("cursor", ParameterKind.Text, ParameterField.Cursor, _ =>
        "The 'cursor' of the previous page; leave it out for the first page.", CheckCursor, MaxLength: 4096);

    /// <summary>The page size of a listing that names none.</summary>
    public const int ListDefaultLimit = 100;

    private static bool CheckPrefix(string text, ref RequestErrors? errors)
    {
        if (LeaseName.IsValidPrefix(text))
        {
            return true;
        }

        RequestErrors.Add(ref errors, "prefix", LeaseName.PrefixRule);
        return false;
    }

    private static bool CheckCursor(string text, ref RequestErrors? errors)
    {
        if (text.Length > 0)
        {
            return true;
        }

        RequestErrors.Add(ref errors, "cursor", "A cursor is the value of 'cursor' in the previous page; leave it out for the first page.");
        return false;
    }
    public static readonly LeaseParameter Value = new(CampaignRequest.ValueName, ParameterKind.Text, ParameterField.Value, _ =>
        $"What the leader tells its followers (an address, a host name): 0-{CampaignRequest.MaxValueLength} characters, no control characters; observers see every new value.", CampaignRequest.CheckValue);

    public static readonly LeaseParameter Limit = new(PermitRequest.LimitName, ParameterKind.Count, ParameterField.Limit, l =>
        $"Required (here or in the body): how many permits may be held at once, 1 .. {l.Semaphores.MaxLimit} (Semaphores:MaxLimit). A caller is let in while fewer than its own limit are held.");

    public static readonly LeaseParameter Mode = new(RwLockRequest.ModeName, ParameterKind.Text, ParameterField.Mode, _ =>
        "Required (here or in the body): read (shared: any number of readers at once, while no writer holds or waits) or write (alone).", RwLockRequest.CheckMode);
}

/// <summary>
/// The parameters one operation takes, whether it reads an Idempotency-Key header, what it holds (for descriptions), and
/// whether it takes them from the query only (no body).
/// </summary>
internal sealed class OperationParameters(LeaseParameter[] parameters, bool idempotencyKey = false, string subject = "lock", bool queryOnly = false)
{
    /// <summary>A page of an operator's listing of any kind.</summary>
    public static readonly OperationParameters List = new([LeaseParameter.ListPrefix, LeaseParameter.ListLimit, LeaseParameter.ListCursor], subject: "lease", queryOnly: true);

    public static readonly OperationParameters Acquire = new([LeaseParameter.TtlMs, LeaseParameter.WaitMs, LeaseParameter.Owner, LeaseParameter.MaxHoldMs], idempotencyKey: true);
    public static readonly OperationParameters Extend = new([LeaseParameter.ExtendTtlMs]);
    public static readonly OperationParameters Watch = new([LeaseParameter.WatchMs]);
    public static readonly OperationParameters None = new([]);

    public static readonly OperationParameters AcquirePermit = new(
        [LeaseParameter.Limit, LeaseParameter.TtlMs, LeaseParameter.WaitMs, LeaseParameter.Owner, LeaseParameter.MaxHoldMs], idempotencyKey: true, subject: "permit");

    public static readonly OperationParameters ExtendPermit = new([LeaseParameter.ExtendTtlMs], subject: "permit");
    public static readonly OperationParameters WatchPermit = new([LeaseParameter.WatchMs], subject: "permit");

    public static readonly OperationParameters AcquireRwLock = new(
        [LeaseParameter.Mode, LeaseParameter.TtlMs, LeaseParameter.WaitMs, LeaseParameter.Owner, LeaseParameter.MaxHoldMs], idempotencyKey: true, subject: "lease");

    public static readonly OperationParameters ExtendRwLock = new([LeaseParameter.ExtendTtlMs], subject: "lease");
    public static readonly OperationParameters WatchRwLock = new([LeaseParameter.WatchMs], subject: "lease");
    public static readonly OperationParameters Campaign = new(
        [LeaseParameter.TtlMs, LeaseParameter.WaitMs, LeaseParameter.Value, LeaseParameter.MaxHoldMs], idempotencyKey: true, subject: "leadership");

    public static readonly OperationParameters Proclaim = new([LeaseParameter.ExtendTtlMs, LeaseParameter.Value], subject: "leadership");
    public static readonly OperationParameters WatchLeadership = new([LeaseParameter.WatchMs], subject: "leadership");

    /// <summary>An array, so that looking through it allocates no enumerator on the request path.</summary>
    public LeaseParameter[] Parameters { get; } = parameters;

    public bool ReadsIdempotencyKey { get; } = idempotencyKey;

    /// <summary>True when the operation takes no body (a GET of a listing): the document shows no request body.</summary>
    public bool QueryOnly { get; } = queryOnly;

    /// <summary>What the operation holds, as its parameters' descriptions name it: "lock", "permit", "leadership" or (a read/write lock's) "lease".</summary>
    public string Subject { get; } = subject;

    public LeaseParameter? Find(string name)
    {
        foreach (var parameter in Parameters)
        {
            if (parameter.Name == name)
            {
                return parameter;
            }
        }

        return null;
    }
}
