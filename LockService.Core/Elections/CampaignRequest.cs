using LockService.Core.Locks;

namespace LockService.Core.Elections;

/// <summary>What a campaign asks for: the lease of a lock's acquire (without an owner) and the value the leader shows.</summary>
/// <param name="TtlMs">How long the leadership lives unless resigned or extended.</param>
/// <param name="WaitMs">How long to wait in the server while another candidate leads; 0 answers at once.</param>
/// <param name="Value">What the leader tells its followers (an address, a host name): 0-1024 characters, no control characters.</param>
/// <param name="IdempotencyKey">A retry of the same campaign while its leadership lasts gets the same lease back.</param>
/// <param name="MaxHoldMs">The longest this candidate may lead in total; null: <see cref="LockOptions.DefaultMaxHoldMs"/>.</param>
public readonly record struct CampaignRequest(long TtlMs, long WaitMs = 0, string Value = "", string? IdempotencyKey = null, long? MaxHoldMs = null)
{
    /// <summary>The value parameter's name.</summary>
    public const string ValueName = "value";

    /// <summary>Longest value.</summary>
    public const int MaxValueLength = 1024;

    /// <summary>The lease part of the request, as a lock's acquire asks for it.</summary>
    public AcquireRequest Lease => new(TtlMs, WaitMs, null, IdempotencyKey, MaxHoldMs);

    /// <summary>What breaks the lock rules or the value rule under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LockOptions options)
    {
        var errors = Lease.Validate(options);
        CheckValue(Value, ref errors);
        return errors;
    }

    /// <summary>The request with the lock's default hold cap applied (<see cref="AcquireRequest.WithDefaults"/>).</summary>
    public CampaignRequest WithDefaults(LockOptions options)
    {
        var lease = Lease.WithDefaults(options);
        return this with { TtlMs = lease.TtlMs, MaxHoldMs = lease.MaxHoldMs };
    }

    /// <summary>Adds an error (and returns false) unless <paramref name="value"/> is 0-1024 characters without control characters.</summary>
    public static bool CheckValue(string value, ref RequestErrors? errors)
    {
        // Control characters are refused as in an owner: the value is kept in the lease's text one field per line, and it is
        // sent in an event stream's data line, where a line break would end it.
        if (value.Length > MaxValueLength || value.AsSpan().ContainsAnyInRange('\u0000', '\u001f') || value.AsSpan().ContainsAnyInRange('\u007f', '\u009f'))
        {
            RequestErrors.Add(ref errors, ValueName, $"'value' must be 0-{MaxValueLength} characters without control characters.");
            return false;
        }

        return true;
    }
}

/// <summary>What a proclaim asks for: a new TTL (null: the one it campaigned with) and a new value (null: unchanged).</summary>
/// <param name="TtlMs">The new remaining TTL; null keeps the TTL the leader campaigned with.</param>
/// <param name="Value">The new value, or null to keep it; empty clears it.</param>
public readonly record struct ProclaimRequest(long? TtlMs = null, string? Value = null)
{
    /// <summary>What breaks the lock rules or the value rule under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LockOptions options)
    {
        var errors = new ExtendRequest(TtlMs).Validate(options);
        if (Value is not null)
        {
            CampaignRequest.CheckValue(Value, ref errors);
        }

        return errors;
    }
}
