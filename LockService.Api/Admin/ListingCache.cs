namespace LockService.Api.Admin;

/// <summary>One page of a listing of a tenant's leases (locks, or semaphores): what <see cref="ListingCache{TPage}"/> shares.</summary>
internal delegate Task<TPage> PageLister<TPage>(string tenant, string prefix, int limit, string? cursor, CancellationToken cancellationToken);

/// <summary>
/// Shares a listing among the callers that ask for the same page within <see cref="SharedFor"/>: every open dashboard
/// refreshes each second, and N open pages must cost Redis one SCAN pass, not N. One instance per listing (locks,
/// semaphores): a force-release through this service instance clears the one that listed what it released, so the next
/// refresh no longer shows it.
/// </summary>
internal sealed class ListingCache<TPage>(PageLister<TPage> lister, TimeProvider clock)
{
    /// <summary>
    /// How long a page is shared. Half the dashboard's refresh period: however many pages are open, a listing runs at
    /// most twice a second per tenant and prefix, and a new lease shows within a refresh and a half.
    /// </summary>
    public static readonly TimeSpan SharedFor = TimeSpan.FromMilliseconds(500);

    // Entries past their time are swept once there are more than this (distinct tenants, prefixes and cursors).
    private const int SweepAbove = 256;

    private readonly Dictionary<PageRequest, Shared> _pages = [];
    private readonly Lock _gate = new();

    /// <summary>The page, from a listing started within <see cref="SharedFor"/> by anyone, or from a new one.</summary>
    public Task<TPage> ListAsync(string tenant, string prefix, int limit, string? cursor)
    {
        var request = new PageRequest(tenant, prefix, limit, cursor);
        var now = clock.GetTimestamp();
        lock (_gate)
        {
            if (_pages.TryGetValue(request, out var shared) && clock.GetElapsedTime(shared.Started, now) < SharedFor && !shared.Page.IsFaulted)
            {
                return shared.Page;
            }

            if (_pages.Count > SweepAbove)
            {
                foreach (var stale in _pages.Where(p => clock.GetElapsedTime(p.Value.Started, now) >= SharedFor).Select(p => p.Key).ToList())
                {
                    _pages.Remove(stale);
                }
            }

            // Not the caller's cancellation: the listing is shared, and one caller going away must not fail the others.
            var page = lister(tenant, prefix, limit, cursor, CancellationToken.None);
            _pages[request] = new Shared(now, page);
            return page;
        }
    }

    /// <summary>Forgets every shared page (after a force-release).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _pages.Clear();
        }
    }

    private readonly record struct PageRequest(string Tenant, string Prefix, int Limit, string? Cursor);

    private sealed record Shared(long Started, Task<TPage> Page);
}
