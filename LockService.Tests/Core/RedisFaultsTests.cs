using LockService.Core.Leases;
using LockService.Core.Locks;

namespace LockService.Tests.Core;

/// <summary>
/// Which Redis error replies are "not now" (a 503) rather than a bug (a 500), in the forms servers answer them: Redis 7
/// answers an error met inside a script with the original reply first; Redis 6.2 (and before) wraps it in an ERR of its
/// own, which only a server of that version produces, so those forms are held here as text, copied from real replies.
/// </summary>
public sealed class RedisFaultsTests
{
    [Theory]
    // Redis 7, a command outside a script.
    [InlineData("OOM command not allowed when used memory > 'maxmemory'.")]
    [InlineData("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.")]
    [InlineData("READONLY You can't write against a read only replica.")]
    [InlineData("NOREPLICAS Not enough good replicas to write.")]
    [InlineData("LOADING Redis is loading the dataset in memory")]
    [InlineData("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")]
    // Redis 7, inside a script (redis-server 7.0.15).
    [InlineData("OOM command not allowed when used memory > 'maxmemory'. script: bd6f3018b28bbdb36260f19d3c44afed740db987, on @user_script:1.")]
    [InlineData("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error. script: bd6f3018b28bbdb36260f19d3c44afed740db987, on @user_script:1.")]
    [InlineData("READONLY You can't write against a read only replica. script: 408f6260e8ed31bf4baf70873aea2a54d209003a, on @user_script:1.")]
    [InlineData("NOREPLICAS Not enough good replicas to write. script: bd6f3018b28bbdb36260f19d3c44afed740db987, on @user_script:1.")]
    // Redis 6.2 and before, inside a script: the original reply after ": -" in an ERR of the script's own.
    [InlineData("ERR Error running script (call to f_45e87c07f6aff394093b73766a458691d0460655): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica. ")]
    [InlineData("ERR Error running script (call to f_ff9c18634832b0b4115a19b4de5f4788a7cfbd4e): @user_script:30: @user_script: 30: -OOM command not allowed when used memory > 'maxmemory'.   ")]
    [InlineData("ERR Error running script (call to f_8426c8df41c64d8177dce3ecbbe9146ef3759cd2): @user_script:6: @user_script: 6: -MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error. ")]
    [InlineData("ERR Error running script (call to f_8426c8df41c64d8177dce3ecbbe9146ef3759cd2): @user_script:6: @user_script: 6: -NOREPLICAS Not enough good replicas to write. ")]
    // A Redis-compatible server's form of the same (one location instead of two).
    [InlineData("ERR Error running script (call to d8f2fad9f8e86a53d2a6ebd960b33c4972cacc37): @user_script:2: -READONLY You can't write against a read only replica.")]
    public void A_refused_write_in_any_form_is_unavailable(string reply)
    {
        Assert.True(RedisFaults.IsTransientReply(reply));
    }

    [Theory]
    [InlineData("WRONGTYPE Operation against a key holding the wrong kind of value")]
    [InlineData("ERR syntax error")]
    [InlineData("ERR value is not an integer or out of range")]
    [InlineData("NOSCRIPT No matching script. Please use EVAL.")]
    [InlineData("BUSYKEY Target key name already exists.")]
    [InlineData("OOMPH not a code of Redis")]
    // A script's own failure (a bug, or data it cannot read) stays a 500, in both versions' forms, whatever it quotes.
    [InlineData("ERR Error running script (call to f_45e87c07f6aff394093b73766a458691d0460655): @user_script:12: user_script:12: attempt to compare nil with number ")]
    [InlineData("ERR Error running script (call to f_45e87c07f6aff394093b73766a458691d0460655): @user_script:3: @user_script: 3: -WRONGTYPE Operation against a key holding the wrong kind of value ")]
    [InlineData("ERR user_script:12: attempt to compare nil with number script: 45e87c07f6aff394093b73766a458691d0460655, on @user_script:12.")]
    [InlineData("WRONGTYPE Operation against a key holding the wrong kind of value script: 45e87c07f6aff394093b73766a458691d0460655, on @user_script:3.")]
    [InlineData("ERR Error running script (call to f_45e8): no wrapped reply here, not even READONLY")]
    [InlineData("")]
    public void Any_other_error_reply_is_not_unavailable(string reply)
    {
        Assert.False(RedisFaults.IsTransientReply(reply));
    }
}
