namespace LockService.Api.Locks;

/// <summary>The lock operations as metrics and logs name them (the <c>operation</c> label).</summary>
internal enum LockOperation
{
    Acquire,
    Release,
    Extend,
    Inspect,
}

/// <summary>Marks a route as one lock operation: metrics and logs read this, never the route's name.</summary>
internal sealed class LockOperationMetadata
{
    private static readonly LockOperationMetadata[] All = Enum.GetValues<LockOperation>().Select(o => new LockOperationMetadata(o)).ToArray();

    private LockOperationMetadata(LockOperation operation)
    {
        Operation = operation;
        Label = operation.ToString().ToLowerInvariant();
    }

    public LockOperation Operation { get; }

    /// <summary>The operation's metric label: acquire, release, extend or inspect.</summary>
    public string Label { get; }

    public static LockOperationMetadata Of(LockOperation operation) => All[(int)operation];
}

internal static class LockOperationExtensions
{
    public static RouteHandlerBuilder WithOperation(this RouteHandlerBuilder builder, LockOperation operation) =>
        builder.WithMetadata(LockOperationMetadata.Of(operation));
}
