using StackExchange.Redis;

namespace LockService.Core.Locks;

/// <summary>
/// Lists a tenant's held locks page by page, for operators: the names a <see cref="NameLister"/> finds under the lock
/// prefix, each lock's state through the engine's inspection (never its token).
/// </summary>
public sealed class LockLister
{
    /// <summary>The largest page.</summary>
    public const int MaxLimit = NameLister.MaxLimit;

    private readonly LockEngine _engine;
    private readonly NameLister _names;

    /// <summary>Creates a lister over the engine's multiplexer and options.</summary>
    public LockLister(IConnectionMultiplexer multiplexer, LockEngine engine, LockOptions options, RedisOptions redis)
    {
        _engine = engine;
        _names = new NameLister(multiplexer, options.KeyPrefix, redis);
    }

    /// <summary>
    /// One page of the held locks of <paramref name="tenant"/> whose names start with <paramref name="namePrefix"/>:
    /// at most <paramref name="limit"/> locks, none twice, and the cursor of the next page (null at the end). A page
    /// may hold fewer locks, even none, with a cursor. A cursor this lister did not issue for the same tenant and
    /// prefix, or one whose masters changed since (a failover, a reshard), is refused (<see cref="LockPage.CursorError"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is outside 1 .. <see cref="MaxLimit"/>.</exception>
    /// <exception cref="LockStoreUnavailableException">No master is connected.</exception>
    public async Task<LockPage> ListAsync(string tenant, string namePrefix, int limit, string? cursor, CancellationToken cancellationToken = default)
    {
        var (locks, next, refused) = await _names.DescribeAsync(tenant, namePrefix, limit, cursor, _engine.InspectAsync, cancellationToken).ConfigureAwait(false);
        return refused is null ? new LockPage(locks, next, null) : LockPage.Refused(refused);
    }
}

/// <summary>One page of a listing of held locks.</summary>
/// <param name="Locks">The locks, none twice; never their tokens.</param>
/// <param name="Cursor">The next page's cursor, or null when the listing is complete.</param>
/// <param name="CursorError">When the cursor given was refused: why (and <paramref name="Locks"/> is empty).</param>
public sealed record LockPage(IReadOnlyList<LockInfo> Locks, string? Cursor, string? CursorError)
{
    /// <summary>The answer to a cursor that cannot be followed.</summary>
    public static LockPage Refused(string why) => new([], null, why);
}
