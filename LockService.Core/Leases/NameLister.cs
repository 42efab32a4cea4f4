using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// Lists the names of a tenant's locks (or semaphores) under one key prefix page by page, for operators: <c>SCAN</c> with
/// the <see cref="LeaseKeys.MatchPattern"/> of the prefix, the tenant and a name prefix, on every master in turn (one on a
/// single Redis, each of a Cluster's). The cursor handed back says which master and where in its <c>SCAN</c>; SCAN's own
/// guarantee makes a name held during the whole listing appear at least once.
/// </summary>
internal sealed class NameLister
{
    /// <summary>The largest page.</summary>
    public const int MaxLimit = 1000;

    // What one page may cost Redis, whatever the prefix: a prefix that matches few keys (or none) of a large keyspace
    // would otherwise keep one request scanning whole nodes, and requests with new prefixes each start again. Past
    // either bound the page is returned as it is (maybe empty) with a cursor. 10,000 keys read hold a full page of
    // 1,000 locks at the density of a node of locks alone (a lock's key shares it with its fence and lease records).
    private const int MaxScanCallsPerPage = 16, MaxKeysPerPage = 10_000;

    // Redis's own default COUNT, and the most one call asks for: Redis serves nothing else while a SCAN runs, and it
    // reads 1,000 keys in well under a millisecond (10,000 in one call took it tens on a busy machine), so that the
    // acquires queued behind a listing's call hardly wait.
    private const int MinScanCount = 10, MaxScanCount = 1_000;

    private const string Version = "l1";

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly string _keyPrefix;
    private readonly TimeSpan _timeout;

    /// <summary>Creates a lister of the keys under <paramref name="keyPrefix"/> (a lock or semaphore prefix).</summary>
    public NameLister(IConnectionMultiplexer multiplexer, string keyPrefix, RedisOptions redis)
    {
        _multiplexer = multiplexer;
        _keyPrefix = keyPrefix;
        _timeout = TimeSpan.FromMilliseconds(redis.TimeoutMs);
    }

    /// <summary>
    /// One page of the names of <paramref name="tenant"/> that start with <paramref name="namePrefix"/>: at most
    /// <paramref name="limit"/> names, none twice, and the cursor of the next page (null at the end). A page may hold
    /// fewer names, even none, with a cursor. A cursor this lister did not issue for the same key prefix, tenant and name
    /// prefix, or one whose masters changed since (a failover, a reshard), is refused (<see cref="NamePage.CursorError"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is outside 1 .. <see cref="MaxLimit"/>.</exception>
    /// <exception cref="LockStoreUnavailableException">No master is connected.</exception>
    public async Task<NamePage> ListAsync(string tenant, string namePrefix, int limit, string? cursor, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxLimit);
        var pattern = LeaseKeys.MatchPattern(_keyPrefix, tenant, namePrefix);
        var masters = Masters();
        var listing = ListingId(pattern, masters);
        ListCursor position;
        if (cursor is null)
        {
            position = new ListCursor(0, 0, []);
        }
        else if (ListCursor.Parse(cursor, listing, masters.Length) is { } parsed)
        {
            position = parsed;
        }
        else
        {
            return NamePage.Refused(
                "This cursor cannot be followed: it was not issued by this service for this tenant and prefix, or the Redis masters changed since (a failover or a reshard). Start the listing again without a cursor.");
        }

        var names = new List<string>(Math.Min(limit, 64));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var leftover = new List<string>();
        foreach (var name in position.Pending)
        {
            Take(name, names, seen, leftover, limit, namePrefix);
        }

        var (node, scan) = (position.Node, position.Scan);
        var (asked, matched, calls, ceiling) = (0L, 0L, 0, MaxScanCount);
        while (leftover.Count == 0 && names.Count < limit && node < masters.Length && calls < MaxScanCallsPerPage && asked < MaxKeysPerPage)
        {
            cancellationToken.ThrowIfCancellationRequested();

            // Ask for as many keys as should hold most of the names still wanted, at the density seen so far (a lock's
            // hash shares its node with its fence and lease records, so at most a third of the keys match).
            var remaining = limit - names.Count;
            var density = asked == 0 ? 1.0 : Math.Max((double)matched / asked, 0.01);
            // The last call of a page asks for what its budget has left (at least Redis's default).
            var count = (int)Math.Clamp(remaining * 0.8 / density, MinScanCount, Math.Max(MinScanCount, Math.Min(ceiling, MaxKeysPerPage - asked)));
            var (next, keys) = await ScanAsync(masters[node], scan, pattern, count).ConfigureAwait(false);
            calls++;
            asked += count;
            var found = keys.Select(key => LeaseKeys.NameIn(_keyPrefix, tenant, key))
                .Where(name => name is not null && name.StartsWith(namePrefix, StringComparison.Ordinal) && !seen.Contains(name))
                .Distinct(StringComparer.Ordinal)
                .ToList();
            matched += found.Count;

            // SCAN cannot resume inside a reply. A reply with more names than the page has room for ends the page before
            // it (the cursor stays where it was, so the next page reads it again), or on an empty page is asked again
            // smaller; only a reply of the smallest size that still overflows carries its extra names in the cursor.
            if (found.Count > remaining)
            {
                if (names.Count > 0)
                {
                    break;
                }

                if (count > MinScanCount)
                {
                    ceiling = Math.Max(MinScanCount, count / 2);
                    continue;
                }
            }

            foreach (var name in found)
            {
                Take(name!, names, seen, leftover, limit, namePrefix);
            }

            scan = next;
            if (scan == 0)
            {
                node++;
            }
        }

        var nextCursor = node >= masters.Length && leftover.Count == 0 ? null : new ListCursor(node, scan, leftover).Format(listing);
        return new NamePage(names, nextCursor, null);
    }

    /// <summary>
    /// One page of what <paramref name="describe"/> says of each name found (never a token), leaving out those it finds
    /// nothing held under; the cursor, or why the cursor given was refused. A name whose keys hold what this service never
    /// writes there (<see cref="RedisFaults.IsBadData"/>) is left out too, so that one such key does not fail every page
    /// of its tenant: inspecting that name says what is wrong.
    /// </summary>
    public async Task<(IReadOnlyList<T> Items, string? Cursor, string? CursorError)> DescribeAsync<T>(
        string tenant, string namePrefix, int limit, string? cursor, Func<LeaseName, Task<T?>> describe, CancellationToken cancellationToken)
        where T : class
    {
        var page = await ListAsync(tenant, namePrefix, limit, cursor, cancellationToken).ConfigureAwait(false);
        if (page.CursorError is not null)
        {
            return ([], null, page.CursorError);
        }

        var items = await Task.WhenAll(page.Names.Select(name => DescribeOrSkipAsync(describe, new LeaseName(tenant, name)))).ConfigureAwait(false);
        return ([.. items.Where(item => item is not null).Select(item => item!)], page.Cursor, null);
    }

    private static async Task<T?> DescribeOrSkipAsync<T>(Func<LeaseName, Task<T?>> describe, LeaseName name)
        where T : class
    {
        try
        {
            return await describe(name).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (RedisFaults.IsBadData(ex))
        {
            return null;
        }
    }

    // A name found by SCAN (or carried over by a cursor) goes on the page once, or to the next page when this one is full.
    private static void Take(string name, List<string> names, HashSet<string> seen, List<string> leftover, int limit, string namePrefix)
    {
        if (!name.StartsWith(namePrefix, StringComparison.Ordinal) || !seen.Add(name))
        {
            return;
        }

        if (names.Count < limit)
        {
            names.Add(name);
        }
        else
        {
            leftover.Add(name);
        }
    }

    private async Task<(ulong Next, string[] Keys)> ScanAsync(IServer server, ulong cursor, string pattern, int count)
    {
        var reply = (RedisResult[])(await server.ExecuteAsync("SCAN", cursor, "MATCH", pattern, "COUNT", count).WaitAsync(_timeout).ConfigureAwait(false))!;
        var next = ulong.Parse((string)reply[0]!, NumberStyles.None, CultureInfo.InvariantCulture);
        var keys = (RedisResult[])reply[1]!;
        return (next, [.. keys.Select(k => (string)k!)]);
    }

    // The masters, in the order of their endpoints, so every instance of the service walks them alike.
    private IServer[] Masters()
    {
        var masters = _multiplexer.GetServers().Where(s => !s.IsReplica).OrderBy(s => s.EndPoint.ToString(), StringComparer.Ordinal).ToArray();
        return masters.Length > 0 ? masters : throw new LockStoreUnavailableException("No Redis master is known.");
    }

    // What a cursor is bound to: the pattern (tenant and prefix) and the masters with the slots each serves, so that a
    // cursor is refused after a failover (another master) or a reshard (other slots) instead of silently missing locks.
    private static string ListingId(string pattern, IServer[] masters)
    {
        var text = new StringBuilder(pattern).Append('\n');
        foreach (var master in masters)
        {
            text.Append(master.EndPoint).Append('=');
            if (master.ClusterConfiguration?[master.EndPoint] is { } self)
            {
                foreach (var slots in self.Slots)
                {
                    text.Append(slots.From).Append('-').Append(slots.To).Append(',');
                }
            }

            text.Append(';');
        }

        return Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())).AsSpan(0, 12));
    }

    // Where a listing stands: the master (by index), SCAN's cursor on it, and the names found past the last page's
    // limit. Sent as base64url of "l1|listing|node|scan|name,name".
    private sealed record ListCursor(int Node, ulong Scan, IReadOnlyList<string> Pending)
    {
        public string Format(string listing) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Join(
            '|', Version, listing, Node.ToString(CultureInfo.InvariantCulture), Scan.ToString(CultureInfo.InvariantCulture), string.Join(',', Pending))));

        public static ListCursor? Parse(string cursor, string listing, int masters)
        {
            if (cursor.Length is 0 or > 64 * 1024 || !Base64Url.IsValid(cursor))
            {
                return null;
            }

            string text;
            try
            {
                text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            }
            catch (FormatException)
            {
                return null;
            }

            var parts = text.Split('|');
            if (parts.Length != 5 || parts[0] != Version || parts[1] != listing
                || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var node) || node > masters
                || !ulong.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var scan))
            {
                return null;
            }

            var pending = parts[4].Length == 0 ? [] : parts[4].Split(',');
            return pending.All(name => LeaseName.IsValid(name)) ? new ListCursor(node, scan, pending) : null;
        }
    }
}

/// <summary>One page of a listing of names.</summary>
/// <param name="Names">The names, none twice.</param>
/// <param name="Cursor">The next page's cursor, or null when the listing is complete.</param>
/// <param name="CursorError">When the cursor given was refused: why (and <paramref name="Names"/> is empty).</param>
internal sealed record NamePage(IReadOnlyList<string> Names, string? Cursor, string? CursorError)
{
    /// <summary>The answer to a cursor that cannot be followed.</summary>
    public static NamePage Refused(string why) => new([], null, why);
}
