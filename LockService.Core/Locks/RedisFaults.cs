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

    /// <summary>
    /// True when <paramref name="exception"/> is Redis saying that a key of the name holds what this service never writes
    /// there: a script's <see cref="LockScripts.BadData"/> answer (given before its first write, or after undoing it), or
    /// a WRONGTYPE from a command that read such a key. Nothing was changed; an operator must fix or delete the key.
    /// </summary>
    public static bool IsBadData(Exception exception) =>
        exception is RedisServerException server
        && (server.Message.StartsWith(LockScripts.BadData + " ", StringComparison.Ordinal) || server.Message.Contains("WRONGTYPE", StringComparison.Ordinal));

    /// <summary>
    /// What a <see cref="IsBadData"/> exception found, as a sentence that names the Redis key when the script did
    /// (<c>Redis key 'lock:{x}:fence' holds ...</c>). Built from the key and the script's own text, never from a value.
    /// </summary>
    public static string BadDataDetail(Exception exception)
    {
        var message = exception.Message;
        var start = LockScripts.BadData.Length + 1;
        var space = message.StartsWith(LockScripts.BadData + " ", StringComparison.Ordinal) ? message.IndexOf(' ', start) : -1;
        if (space < 0)
        {
            return "A Redis key of this name holds a value of another type than this service keeps there (written by hand, or by another program under this service's key prefix).";
        }

        return $"Redis key '{message[start..space]}' {message[(space + 1)..]}.";
    }
}

/// <summary>Redis answered, but not in a way that lets a lock operation count (no server connected, too few replica acknowledgements).</summary>
/// <param name="message">What was missing.</param>
public sealed class LockStoreUnavailableException(string message) : Exception(message);
