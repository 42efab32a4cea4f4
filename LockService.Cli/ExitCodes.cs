using System.Net;
using LockService.Client;

namespace LockService.Cli;

/// <summary>lockctl's exit codes, from sysexits(3) where one fits, so scripts can tell the outcomes apart.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The lock (or token) is not held: inspect of a free key, release or extend of a token that lost it.</summary>
    public const int NotHeld = 1;

    /// <summary>EX_USAGE: a bad argument, or the service's 400/413/415.</summary>
    public const int Usage = 64;

    /// <summary>EX_UNAVAILABLE: the service unreachable, 503, 429, or another unexpected answer.</summary>
    public const int Unavailable = 69;

    /// <summary>EX_SOFTWARE: the lock was lost while the command ran.</summary>
    public const int Lost = 70;

    /// <summary>EX_TEMPFAIL: the lock is held and the wait ran out (flock's -E default is 1; ours is changeable too).</summary>
    public const int Conflict = 75;

    /// <summary>EX_NOPERM: 401 or 403.</summary>
    public const int NoPermission = 77;

    /// <summary>COMMAND could not be run: not found (127) or not executable (126), as shells say.</summary>
    public const int CommandNotFound = 127;

    public const int CommandNotExecutable = 126;

    /// <summary>A signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) came before COMMAND started: 128 + SIGINT, as a shell's Ctrl-C.</summary>
    public const int Interrupted = 130;

    public static int Of(LockServiceException error) => error switch
    {
        LockServiceAuthException => NoPermission,
        { Status: HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.UnsupportedMediaType } => Usage,
        _ => Unavailable,
    };
}
