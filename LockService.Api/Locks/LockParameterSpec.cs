using LockService.Core.Locks;

namespace LockService.Api.Locks;

/// <summary>What a parameter holds: a whole number of milliseconds or free text.</summary>
internal enum ParameterKind
{
    Milliseconds,
    Text,
}

/// <summary>Which field of <see cref="LockParameters"/> a parameter fills.</summary>
internal enum ParameterField
{
    TtlMs,
    WaitMs,
    Owner,
    MaxHoldMs,
}

/// <summary>
/// One parameter a lock operation takes, as query parameter or JSON body member. The parser and the OpenAPI
/// document (query parameters and body schema) both read it, so they cannot disagree. Its rules live in Core
/// (<see cref="LockRules"/>); <see cref="Describe"/> states them from the same options.
/// </summary>
internal sealed record LockParameter(string Name, ParameterKind Kind, ParameterField Field, Func<LockOptions, string> Describe)
{
    public static readonly LockParameter TtlMs = new(LockRules.TtlMs, ParameterKind.Milliseconds, ParameterField.TtlMs, o =>
        $"How long the lock lives unless released or extended, in ms: {LockRules.MinTtlMs} .. {o.MaxTtlMs} (Locks:MaxTtlMs); default {o.DefaultTtlMs} (Locks:DefaultTtlMs).");

    public static readonly LockParameter ExtendTtlMs = new(LockRules.TtlMs, ParameterKind.Milliseconds, ParameterField.TtlMs, o =>
        $"The new remaining TTL in ms: {LockRules.MinTtlMs} .. {o.MaxTtlMs} (Locks:MaxTtlMs); default: the TTL the lock was acquired with. Cut to what is left of the lock's maxHoldMs.");

    public static readonly LockParameter WaitMs = new(LockRules.WaitMs, ParameterKind.Milliseconds, ParameterField.WaitMs, o =>
        $"How long to wait in the server for a held lock, in ms: 0 .. {o.MaxWaitMs} (Locks:MaxWaitMs); default 0 (do not wait).");

    public static readonly LockParameter WatchMs = new(LockRules.WaitMs, ParameterKind.Milliseconds, ParameterField.WaitMs, o =>
        $"Watch: wait in the server up to this many ms (0 .. {o.MaxWaitMs}) for this token to stop holding the lock; 404 with its reason at once when it does, 200 when the wait runs out. Default 0 (answer at once).");

    public static readonly LockParameter Owner = new(LockRules.Owner, ParameterKind.Text, ParameterField.Owner, _ =>
        $"Free text shown by inspection (who holds it): 1-{LockRules.MaxOwnerLength} characters, no control characters.");

    public static readonly LockParameter MaxHoldMs = new(LockRules.MaxHoldMs, ParameterKind.Milliseconds, ParameterField.MaxHoldMs, o =>
        $"The longest this lock may be held in total, in ms: ttlMs .. {o.MaxHoldMs} (Locks:MaxHoldMs); no extend takes its expiry past acquiredAt + maxHoldMs. "
        + (o.DefaultMaxHoldMs > 0 ? $"Default {o.DefaultMaxHoldMs} (Locks:DefaultMaxHoldMs; a longer ttlMs is cut to it)." : "Default: no cap (Locks:DefaultMaxHoldMs is 0)."));
}

/// <summary>The parameters one operation takes, and whether it reads an Idempotency-Key header.</summary>
internal sealed class OperationParameters(LockParameter[] parameters, bool idempotencyKey = false)
{
    public static readonly OperationParameters Acquire = new([LockParameter.TtlMs, LockParameter.WaitMs, LockParameter.Owner, LockParameter.MaxHoldMs], idempotencyKey: true);
    public static readonly OperationParameters Extend = new([LockParameter.ExtendTtlMs]);
    public static readonly OperationParameters Watch = new([LockParameter.WatchMs]);
    public static readonly OperationParameters None = new([]);

    /// <summary>An array, so that looking through it allocates no enumerator on the request path.</summary>
    public LockParameter[] Parameters { get; } = parameters;

    public bool ReadsIdempotencyKey { get; } = idempotencyKey;

    public LockParameter? Find(string name)
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
