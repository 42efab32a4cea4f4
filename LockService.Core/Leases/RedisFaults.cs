using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>Tells Redis being unreachable, slow, switching over or refusing writes (answer "try again") from bugs.</summary>
public static class RedisFaults
{
    // Server replies that mean "not now" rather than "wrong": loading a dataset, a replica during failover, a cluster
    // without quorum, a script-busy server, and a server that refuses writes until an operator acts (OOM: maxmemory
    // reached under noeviction; MISCONF: a failed save with stop-writes-on-bgsave-error; READONLY: a replica;
    // NOREPLICAS: fewer replicas than min-replicas-to-write). None of them is the request's fault or the service's.
    private static readonly HashSet<string> TransientCodes =
        new(["LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "OOM", "MISCONF"], StringComparer.Ordinal);

    // Redis before 7 answers an error that redis.call raised inside a script as an ERR of its own, with the original
    // reply after ": -" ("ERR Error running script (call to f_<sha1>): @user_script:4: @user_script: 4: -READONLY You
    // can't write against a read only replica."). Redis 7 answers the original reply itself, with where it came from
    // at the end ("READONLY You can't write against a read only replica. script: <sha1>, on @user_script:4.").
    private const string WrappedScriptError = "ERR Error running script";
    private const string WrappedReply = ": -";

    /// <summary>True when <paramref name="exception"/> means Redis cannot serve the request now.</summary>
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException or TimeoutException or LockStoreUnavailableException => true,
        RedisServerException server => IsTransientReply(server.Message),
        AggregateException aggregate => aggregate.InnerExceptions.Any(IsUnavailable),
        _ => false,
    };

    /// <summary>
    /// True when a Redis error reply (as StackExchange.Redis reports it, without the leading '-') means "not now", also
    /// when it comes wrapped in the error of the script that met it.
    /// </summary>
    /// <param name="reply">The error reply's text.</param>
    public static bool IsTransientReply(string reply)
    {
        if (TransientCodes.Contains(CodeOf(reply)))
        {
            return true;
        }

        if (!reply.StartsWith(WrappedScriptError, StringComparison.Ordinal))
        {
            return false;
        }

        var wrapped = reply.IndexOf(WrappedReply, WrappedScriptError.Length, StringComparison.Ordinal);
        return wrapped >= 0 && TransientCodes.Contains(CodeOf(reply[(wrapped + WrappedReply.Length)..]));
    }

    // An error reply's code is its first word ("OOM command not allowed ..."); a word that is not all capitals is no code.
    private static string CodeOf(string reply)
    {
        var end = reply.IndexOf(' ', StringComparison.Ordinal);
        var code = end < 0 ? reply : reply[..end];
        return code.Length > 0 && code.All(char.IsAsciiLetterUpper) ? code : string.Empty;
    }

    /// <summary>
    /// True when <paramref name="exception"/> is Redis saying that a key of the name holds what this service never writes
    /// there: a script's <see cref="LeaseScripts.BadData"/> answer (given before its first write, or after undoing it), or
    /// a WRONGTYPE from a command that read such a key. Nothing was changed; an operator must fix or delete the key.
    /// </summary>
    public static bool IsBadData(Exception exception) =>
        exception is RedisServerException server
        && (server.Message.StartsWith(LeaseScripts.BadData + " ", StringComparison.Ordinal) || server.Message.Contains("WRONGTYPE", StringComparison.Ordinal));

    /// <summary>
    /// What a <see cref="IsBadData"/> exception found, as a sentence that names the Redis key when the script did
    /// (<c>Redis key 'lock:{x}:fence' holds ...</c>). Built from the key and the script's own text, never from a value.
    /// </summary>
    public static string BadDataDetail(Exception exception)
    {
        var message = exception.Message;
        var start = LeaseScripts.BadData.Length + 1;
        var space = message.StartsWith(LeaseScripts.BadData + " ", StringComparison.Ordinal) ? message.IndexOf(' ', start) : -1;
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
