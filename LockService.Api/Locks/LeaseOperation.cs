using LockService.Core.Leases;

namespace LockService.Api.Locks;

/// <summary>What a lease route does, whatever the kind (the <c>operation</c> label of metrics and logs).</summary>
internal enum LeaseOperation
{
    Acquire,
    Release,
    Extend,
    Inspect,
}

/// <summary>
/// What a lease route's handler found, from the engine's and the store's typed results (the <c>outcome</c> label); the
/// request line's status never stands in for it. Requests no handler answered (bad input, no API key, a rate limit,
/// Redis trouble) get their outcome from the pipeline.
/// </summary>
internal enum LeaseOutcome
{
    Acquired,
    Held,
    Full,
    Released,
    Extended,
    NotHeld,
    Rejected,
    Invalid,
    Error,
    Cancelled,
    Unauthorized,
}

/// <summary>Marks a route as one operation on one kind of lease: metrics and logs read this, never the route's name.</summary>
internal sealed class LeaseOperationMetadata
{
    private static readonly LeaseOperationMetadata[] All =
        [.. Enum.GetValues<LeaseKind>().SelectMany(kind => Enum.GetValues<LeaseOperation>().Select(operation => new LeaseOperationMetadata(kind, operation)))];

    private LeaseOperationMetadata(LeaseKind kind, LeaseOperation operation)
    {
        Kind = kind;
        Operation = operation;
        Index = IndexOf(kind, operation);
        KindLabel = LabelOf(kind);
        Label = operation.ToString().ToLowerInvariant();
    }

    /// <summary>How many kind and operation pairs there are (the length of a table indexed by <see cref="Index"/>).</summary>
    public static int Count => All.Length;

    public LeaseKind Kind { get; }

    public LeaseOperation Operation { get; }

    /// <summary>The pair's place in tables of every pair.</summary>
    public int Index { get; }

    /// <summary>The kind's metric label: lock, semaphore, rwlock, election.</summary>
    public string KindLabel { get; }

    /// <summary>The operation's metric label: acquire, release, extend, inspect.</summary>
    public string Label { get; }

    public static LeaseOperationMetadata Of(LeaseKind kind, LeaseOperation operation) => All[IndexOf(kind, operation)];

    public static LeaseOperationMetadata At(int index) => All[index];

    public static string LabelOf(LeaseKind kind) => kind.ToString().ToLowerInvariant();

    private static int IndexOf(LeaseKind kind, LeaseOperation operation) => ((int)kind * Enum.GetValues<LeaseOperation>().Length) + (int)operation;
}

/// <summary>The outcome a handler found, set once per request; read by the request's metrics.</summary>
internal sealed class LeaseOutcomeFeature
{
    private static readonly LeaseOutcomeFeature[] All = [.. Enum.GetValues<LeaseOutcome>().Select(o => new LeaseOutcomeFeature(o))];

    private LeaseOutcomeFeature(LeaseOutcome outcome) => Outcome = outcome;

    public LeaseOutcome Outcome { get; }

    // One shared instance per outcome: setting it allocates nothing (Kestrel keeps the extra-feature list per connection).
    public static void Set(HttpContext http, LeaseOutcome outcome) => http.Features.Set(All[(int)outcome]);
}

internal static class LeaseOperationExtensions
{
    public static RouteHandlerBuilder WithOperation(this RouteHandlerBuilder builder, LeaseKind kind, LeaseOperation operation) =>
        builder.WithMetadata(LeaseOperationMetadata.Of(kind, operation));

    /// <summary>Records what the handler found, for the request's metrics.</summary>
    public static void Outcome(this HttpContext http, LeaseOutcome outcome) => LeaseOutcomeFeature.Set(http, outcome);
}
