using System.Reflection;
using StackExchange.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// A multiplexer that runs an action just before each pub/sub subscription is sent, and is the real
/// connection in every other respect: a test's way into the window between a waiter's failed attempt and
/// its subscription, with no hook in production code.
/// </summary>
public class SubscribeHook : DispatchProxy
{
    private object _inner = null!;
    private Func<Task>? _beforeSubscribe;

    /// <summary>Wraps <paramref name="inner"/>; <paramref name="beforeSubscribe"/> runs before the first subscription only.</summary>
    public static IConnectionMultiplexer Wrap(IConnectionMultiplexer inner, Func<Task> beforeSubscribe)
    {
        var proxy = Create<IConnectionMultiplexer, SubscribeHook>();
        var hook = (SubscribeHook)(object)proxy;
        hook._inner = inner;
        hook._beforeSubscribe = beforeSubscribe;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (targetMethod.Name == nameof(IConnectionMultiplexer.GetSubscriber))
        {
            var subscriber = Create<ISubscriber, SubscribeHook>();
            var hook = (SubscribeHook)(object)subscriber;
            hook._inner = targetMethod.Invoke(_inner, args)!;
            hook._beforeSubscribe = _beforeSubscribe;
            return subscriber;
        }

        if (targetMethod.Name == nameof(ISubscriber.SubscribeAsync) && targetMethod.ReturnType == typeof(Task)
            && Interlocked.Exchange(ref _beforeSubscribe, null) is { } before)
        {
            return ThenAsync(before, () => (Task)targetMethod.Invoke(_inner, args)!);
        }

        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            throw ex.InnerException;
        }
    }

    private static async Task ThenAsync(Func<Task> before, Func<Task> subscribe)
    {
        await before();
        await subscribe();
    }
}
