using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>Tells Redis being unreachable, slow or switching over (answer "try again") from bugs.</summary>
public static class RedisFaults
{
    // Server replies that mean "not now" rather than "wrong": loading a dataset, a replica during failover,
    // a cluster without quorum, a script-busy server.
    private static readonly string[] TransientReplies = ["LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS"];

    /// <summary>True when <paramref name="exception"/> means Redis cannot serve the request now.</summary>
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException or TimeoutException or LockStoreUnavailableException => true,
        RedisServerException server => TransientReplies.Any(r => server.Message.StartsWith(r, StringComparison.Ordinal)),
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsUnavailable),
        _ => false,
    };
}

/// <summary>Redis answered, but not in a way that lets a lock operation count (no server connected, too few replica acknowledgements).</summary>
/// <param name="message">What was missing.</param>
public sealed class LockStoreUnavailableException(string message) : Exception(message);
