using System.Net;
using LockService.Client;

namespace LockService.Cli;

/// <summary>
/// Acquires with lockctl's waiting rules: the wait happens in the server, in pieces no longer than the service's
/// Locks:MaxWaitMs, re-sent with one Idempotency-Key so that a retried piece whose answer got lost returns the lease it
/// obtained instead of a second acquisition; <c>forever</c> re-sends until the lock comes. A lock, a semaphore's permit,
/// a read/write lease or an election's leadership: the same rules.
/// </summary>
internal static class Acquirer
{
    // The service's default Locks:MaxWaitMs; a service configured lower answers 400 (errors.waitMs) and we halve.
    private static readonly TimeSpan Piece = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan SmallestPiece = TimeSpan.FromSeconds(1);

    /// <summary>The lease (of the settings' kind) and the timestamp taken before the request that granted it; null when held and the wait ran out.</summary>
    public static async Task<(Lease Lease, long GrantedAt)?> AcquireAsync(LockClient client, AcquireSettings settings, CancellationToken cancellationToken)
    {
        var time = TimeProvider.System;
        var idempotencyKey = settings.IdempotencyKey ?? Guid.NewGuid().ToString("N");
        var forever = settings.Wait == Timeout.InfiniteTimeSpan;
        var start = time.GetTimestamp();
        var piece = Piece;
        while (true)
        {
            var left = forever ? piece : settings.Wait - time.GetElapsedTime(start);
            var wait = left < TimeSpan.Zero ? TimeSpan.Zero : left < piece ? left : piece;
            var sent = time.GetTimestamp();
            AcquireResult result;
            try
            {
                result = await settings.AcquireOnceAsync(client, wait, idempotencyKey, cancellationToken);
            }
            catch (LockServiceException ex) when (ex.Status == HttpStatusCode.BadRequest && ex.Errors.ContainsKey("waitMs") && wait > SmallestPiece)
            {
                piece = wait / 2;
                continue;
            }

            if (result.Lease is { } lease)
            {
                return (lease, sent);
            }

            if (!forever && time.GetElapsedTime(start) >= settings.Wait)
            {
                return null;
            }
        }
    }
}
