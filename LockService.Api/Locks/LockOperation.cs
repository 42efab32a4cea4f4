namespace LockService.Api.Locks;

/// <summary>The lock and semaphore operations as metrics and logs name them (the <c>operation</c> label).</summary>
internal enum LockOperation
{
    Acquire,
    Release,
    Extend,
    Inspect,
    SemaphoreAcquire,
    SemaphoreRelease,
    SemaphoreExtend,
    SemaphoreInspect,
}

/// <summary>Marks a route as one lock operation: metrics and logs read this, never the route's name.</summary>
internal sealed class LockOperationMetadata
{
    private static readonly LockOperationMetadata[] All = Enum.GetValues<LockOperation>().Select(o => new LockOperationMetadata(o)).ToArray();

    private LockOperationMetadata(LockOperation operation)
    {
        Operation = operation;
        Label = string.Concat(operation.ToString().Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
        Verb = operation switch
        {
            LockOperation.SemaphoreAcquire => LockOperation.Acquire,
            LockOperation.SemaphoreRelease => LockOperation.Release,
            LockOperation.SemaphoreExtend => LockOperation.Extend,
            LockOperation.SemaphoreInspect => LockOperation.Inspect,
            _ => operation,
        };
    }

    public LockOperation Operation { get; }

    /// <summary>The operation's metric label: acquire, release, extend, inspect, semaphore_acquire, ...</summary>
    public string Label { get; }

    /// <summary>What the operation does, whatever it does it to (a semaphore's acquire is an acquire): its outcomes' meaning.</summary>
    public LockOperation Verb { get; }

    public static LockOperationMetadata Of(LockOperation operation) => All[(int)operation];
}

internal static class LockOperationExtensions
{
    public static RouteHandlerBuilder WithOperation(this RouteHandlerBuilder builder, LockOperation operation) =>
        builder.WithMetadata(LockOperationMetadata.Of(operation));
}
