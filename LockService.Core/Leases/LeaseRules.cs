namespace LockService.Core.Leases;

/// <summary>
/// The one home of the rules a lock request is held to, next to the <see cref="LeaseOptions"/> that set their
/// limits. The engine enforces them (an <see cref="ArgumentException"/> naming the field) and the HTTP API
/// answers them as <c>400 invalid_parameter</c>, from the same checks and the same words.
/// Error keys are the contract's parameter names.
/// </summary>
public static class LeaseRules
{
    /// <summary>Shortest TTL a lock may have.</summary>
    public const long MinTtlMs = 10;

    /// <summary>Shortest TTL of a lock held by a stream: renewed every third of it, it must leave time for a round trip.</summary>
    public const long MinStreamTtlMs = 1000;

    /// <summary>Longest owner text.</summary>
    public const int MaxOwnerLength = 128;

    /// <summary>Longest Idempotency-Key.</summary>
    public const int MaxIdempotencyKeyLength = 128;

    /// <summary>The TTL parameter's name.</summary>
    public const string TtlMs = "ttlMs";

    /// <summary>The wait parameter's name.</summary>
    public const string WaitMs = "waitMs";

    /// <summary>The owner parameter's name.</summary>
    public const string Owner = "owner";

    /// <summary>The hold cap parameter's name.</summary>
    public const string MaxHoldMs = "maxHoldMs";

    /// <summary>The Idempotency-Key header's name.</summary>
    public const string IdempotencyKey = "Idempotency-Key";

    /// <summary>Adds an error (and returns false) when <paramref name="ttlMs"/> is outside <see cref="MinTtlMs"/> .. <see cref="LeaseOptions.MaxTtlMs"/>.</summary>
    public static bool CheckTtl(long ttlMs, LeaseOptions options, ref RequestErrors? errors)
    {
        if (ttlMs < MinTtlMs || ttlMs > options.MaxTtlMs)
        {
            RequestErrors.Add(ref errors, TtlMs, $"'ttlMs' must be between {MinTtlMs} and {options.MaxTtlMs}; got {ttlMs}.");
            return false;
        }

        return true;
    }

    /// <summary>Adds an error (and returns false) when <paramref name="waitMs"/> is outside 0 .. <see cref="LeaseOptions.MaxWaitMs"/>.</summary>
    public static bool CheckWait(long waitMs, LeaseOptions options, ref RequestErrors? errors)
    {
        if (waitMs < 0 || waitMs > options.MaxWaitMs)
        {
            RequestErrors.Add(ref errors, WaitMs, $"'waitMs' must be between 0 and {options.MaxWaitMs}; got {waitMs}.");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Adds the errors of an acquire that asks for a lease held by a stream (any kind): a TTL under <see cref="MinStreamTtlMs"/>, or
    /// an Idempotency-Key (a retried stream would be a second holder of the same lease).
    /// </summary>
    public static void CheckStream(AcquireRequest request, ref RequestErrors? errors)
    {
        if (request.TtlMs < MinStreamTtlMs)
        {
            RequestErrors.Add(ref errors, TtlMs, $"A lease held by a stream needs 'ttlMs' of at least {MinStreamTtlMs}; got {request.TtlMs}.");
        }

        if (request.IdempotencyKey is not null)
        {
            RequestErrors.Add(ref errors, IdempotencyKey, $"A lease held by a stream takes no {IdempotencyKey}: the stream is the lease, and a retry opens a new one.");
        }
    }

    /// <summary>Adds an error (and returns false) unless <paramref name="maxHoldMs"/> is between the TTL and <see cref="LeaseOptions.MaxHoldMs"/>.</summary>
    public static bool CheckMaxHold(long maxHoldMs, long ttlMs, LeaseOptions options, ref RequestErrors? errors)
    {
        if (maxHoldMs < ttlMs || maxHoldMs > options.MaxHoldMs)
        {
            RequestErrors.Add(ref errors, MaxHoldMs, $"'maxHoldMs' must be between the lock's ttlMs ({ttlMs}) and {options.MaxHoldMs}; got {maxHoldMs}.");
            return false;
        }

        return true;
    }

    /// <summary>Adds an error (and returns false) unless <paramref name="owner"/> is 1-128 characters without control characters.</summary>
    public static bool CheckOwner(string owner, ref RequestErrors? errors)
    {
        if (owner.Length is 0 or > MaxOwnerLength || owner.AsSpan().ContainsAnyInRange('\u0000', '\u001f') || owner.AsSpan().ContainsAnyInRange('\u007f', '\u009f'))
        {
            RequestErrors.Add(ref errors, Owner, $"'owner' must be 1-{MaxOwnerLength} characters without control characters.");
            return false;
        }

        return true;
    }

    /// <summary>Adds an error (and returns false) unless <paramref name="key"/> is 1-128 printable ASCII characters.</summary>
    public static bool CheckIdempotencyKey(string key, ref RequestErrors? errors)
    {
        if (key.Length is 0 or > MaxIdempotencyKeyLength || key.AsSpan().ContainsAnyExceptInRange(' ', '~'))
        {
            RequestErrors.Add(ref errors, IdempotencyKey, $"The {IdempotencyKey} header must be given once, 1-{MaxIdempotencyKeyLength} printable ASCII characters.");
            return false;
        }

        return true;
    }
}

/// <summary>What is wrong with a request, keyed by the contract's parameter names; created by the first error only.</summary>
public sealed class RequestErrors
{
    private readonly Dictionary<string, string[]> _byName = new(StringComparer.Ordinal);

    /// <summary>The errors, each parameter with its messages (the shape of ASP.NET's <c>ValidationProblemDetails.Errors</c>).</summary>
    public IReadOnlyDictionary<string, string[]> ByName => _byName;

    /// <summary>Adds <paramref name="message"/> for <paramref name="name"/>, creating the collection on the first error.</summary>
    public static void Add(ref RequestErrors? errors, string name, string message)
    {
        errors ??= new RequestErrors();
        errors._byName[name] = errors._byName.TryGetValue(name, out var existing) ? [.. existing, message] : [message];
    }

    /// <summary>Adds to <paramref name="errors"/> what <paramref name="more"/> says of parameters it does not name yet; either may be null.</summary>
    public static RequestErrors? Merge(RequestErrors? errors, RequestErrors? more)
    {
        if (errors is null || more is null)
        {
            return errors ?? more;
        }

        foreach (var (name, messages) in more._byName)
        {
            errors._byName.TryAdd(name, messages);
        }

        return errors;
    }

    /// <summary>The exception the engine throws for a request that breaks the rules: it names the first field.</summary>
    public ArgumentException ToException()
    {
        var name = _byName.Keys.First();
        return new ArgumentException(string.Join(" ", _byName.SelectMany(e => e.Value)), name);
    }
}
