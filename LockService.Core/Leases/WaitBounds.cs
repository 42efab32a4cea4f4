using System.Runtime.InteropServices;

namespace LockService.Core.Leases;

/// <summary>Which bound refused a wait, a watch or a stream.</summary>
public enum NoRoom
{
    /// <summary>Not refused: there was room.</summary>
    None,

    /// <summary>The instance has as many open as its bound allows (<see cref="LeaseOptions.MaxWaiters"/>, <see cref="LeaseOptions.MaxWatchers"/>, <see cref="LeaseOptions.MaxStreams"/>).</summary>
    Instance,

    /// <summary>The caller's tenant has its share of the instance's bound open (<see cref="LeaseOptions.TenantShare"/>).</summary>
    Tenant,
}

/// <summary>
/// What one service instance keeps open at once, and for whom: requests waiting (<see cref="LeaseOptions.MaxWaiters"/>),
/// watches (<see cref="LeaseOptions.MaxWatchers"/>) and lease-holding streams (<see cref="LeaseOptions.MaxStreams"/>), each
/// also per tenant (<see cref="LeaseOptions.TenantShare"/>), so that one tenant cannot take every place of an instance and
/// starve the others. One per instance, shared by the engines of every kind (the container's singleton); an engine made
/// without one has bounds of its own. A request without a tenant (authentication off) counts against the instance's
/// bounds only. Only waits, watches and streams count: a plain acquire never comes here.
/// </summary>
public sealed class WaitBounds
{
    private readonly Bound _waiters;
    private readonly Bound _watchers;
    private readonly Bound _streams;

    /// <summary>Bounds as <paramref name="options"/> set them.</summary>
    public WaitBounds(LeaseOptions options)
    {
        _waiters = new Bound(options.MaxWaiters, options.TenantShare(options.MaxWaiters));
        _watchers = new Bound(options.MaxWatchers, options.TenantShare(options.MaxWatchers));
        _streams = new Bound(options.MaxStreams, options.TenantShare(options.MaxStreams));
    }

    /// <summary>Lease-holding streams open on this instance right now.</summary>
    public int Streams => _streams.Count;

    /// <summary>Takes a place for a stream of <paramref name="tenant"/>, or says which bound has none.</summary>
    public NoRoom TryOpenStream(string tenant) => _streams.TryTake(tenant);

    /// <summary>Gives back the place a stream of <paramref name="tenant"/> took (<see cref="TryOpenStream"/>).</summary>
    public void CloseStream(string tenant) => _streams.Return(tenant);

    internal NoRoom TryTakeWaiter(string tenant) => _waiters.TryTake(tenant);

    internal void ReturnWaiter(string tenant) => _waiters.Return(tenant);

    internal NoRoom TryTakeWatcher(string tenant) => _watchers.TryTake(tenant);

    internal void ReturnWatcher(string tenant) => _watchers.Return(tenant);

    // One bound and its tenants' shares. Taken under the gates of several engines' queues, so it has a lock of its own;
    // a tenant's entry lives only while it has places, so tenants that come and go leave nothing behind.
    internal sealed class Bound(int max, int perTenant)
    {
        private readonly Dictionary<string, int> _tenants = new(StringComparer.Ordinal);
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public NoRoom TryTake(string tenant)
        {
            lock (_tenants)
            {
                if (_count >= max)
                {
                    return NoRoom.Instance;
                }

                if (tenant.Length > 0)
                {
                    ref var held = ref CollectionsMarshal.GetValueRefOrAddDefault(_tenants, tenant, out _);
                    if (held >= perTenant)
                    {
                        return NoRoom.Tenant;
                    }

                    held++;
                }

                _count++;
                return NoRoom.None;
            }
        }

        public void Return(string tenant)
        {
            lock (_tenants)
            {
                _count--;
                if (tenant.Length > 0 && --CollectionsMarshal.GetValueRefOrNullRef(_tenants, tenant) == 0)
                {
                    _tenants.Remove(tenant);
                }
            }
        }
    }
}
