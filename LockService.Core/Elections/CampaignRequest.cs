using LockService.Core.Leases;

namespace LockService.Core.Elections;

/// <summary>What a campaign asks for: the terms of a lease (no owner: an election's leader shows its value) and the value.</summary>
/// <param name="Terms">The lease's terms (TTL, wait, Idempotency-Key, hold cap, stream); its owner must be null.</param>
/// <param name="Value">What the leader tells its followers (an address, a host name): 0-1024 characters, no control characters.</param>
public readonly record struct CampaignRequest(AcquireRequest Terms, string Value = "") : ILeaseRequest<CampaignRequest>
{
    /// <summary>The value parameter's name.</summary>
    public const string ValueName = "value";

    /// <summary>Longest value.</summary>
    public const int MaxValueLength = 1024;

    long ILeaseRequest<CampaignRequest>.Claim => 0;

    /// <summary>What breaks the lease rules (a stream's too, when one holds it) or the value rule under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LeaseOptions options, bool stream = false)
    {
        var errors = Terms.Validate(options, stream);
        CheckValue(Value, ref errors);
        if (Terms.Owner is not null)
        {
            RequestErrors.Add(ref errors, LeaseRules.Owner, "An election's leader has no owner: it shows its 'value'.");
        }

        return errors;
    }

    /// <inheritdoc />
    public CampaignRequest WithTerms(AcquireRequest terms) => this with { Terms = terms };

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
    /// <summary>What breaks the lease rules or the value rule under <paramref name="options"/>, or null when the request is valid.</summary>
    public RequestErrors? Validate(LeaseOptions options)
    {
        var errors = new ExtendRequest(TtlMs).Validate(options);
        if (Value is not null)
        {
            CampaignRequest.CheckValue(Value, ref errors);
        }

        return errors;
    }
}
