using System.Text.Json.Serialization.Metadata;

namespace LockService.Client;

/// <summary>
/// What a lease is of: a lock (<c>/locks/{key}</c>), a permit of a counting semaphore (<c>/semaphores/{key}</c>,
/// acquired with <c>limit</c>), a read or write lease of a read/write lock (<c>/rwlocks/{key}</c>, acquired with
/// <c>mode</c>) or the leadership of an election (<c>/elections/{name}</c>, campaigned for with <c>value</c>). The
/// contract gives them all the same calls; they differ only in these routes, codes and bodies, so that
/// <see cref="LockClient"/> and <see cref="LockHandle"/> serve every kind with one piece of code.
/// </summary>
/// <param name="Route">The routes' first segment.</param>
/// <param name="HeldCode">The 409 code of an acquire whose wait ran out.</param>
/// <param name="NotHeldCode">The 404 code for a token that does not hold it (with <c>reason</c>), and of a force-release of a free one.</param>
/// <param name="EmptyCode">The 404 code of an inspection when nothing is held.</param>
/// <param name="LeaseJson">The body of acquire and extend: <see cref="Lease"/>, <see cref="Client.Permit"/>, <see cref="RwLease"/> or <see cref="Leadership"/>.</param>
/// <param name="InfoJson">The body of check and watch: <see cref="LockInfo"/>, <see cref="PermitInfo"/>, <see cref="RwLeaseInfo"/> or <see cref="LeaderInfo"/>.</param>
/// <param name="InspectJson">The body of inspection: <see cref="LockInfo"/>, <see cref="SemaphoreInfo"/>, <see cref="RwLockInfo"/> or <see cref="LeaderInfo"/>.</param>
internal sealed record LeaseKind(
    string Route, string HeldCode, string NotHeldCode, string EmptyCode, JsonTypeInfo LeaseJson, JsonTypeInfo InfoJson, JsonTypeInfo InspectJson)
{
    public static readonly LeaseKind Lock = new(
        "locks", "lock_held", "lock_not_held", "lock_not_held", ClientJson.Default.Lease, ClientJson.Default.LockInfo, ClientJson.Default.LockInfo);

    public static readonly LeaseKind Permit = new(
        "semaphores", "semaphore_full", "permit_not_held", "semaphore_empty", ClientJson.Default.Permit, ClientJson.Default.PermitInfo, ClientJson.Default.SemaphoreInfo);

    public static readonly LeaseKind RwLock = new(
        "rwlocks", "rwlock_held", "rwlock_not_held", "rwlock_free", ClientJson.Default.RwLease, ClientJson.Default.RwLeaseInfo, ClientJson.Default.RwLockInfo);

    public static readonly LeaseKind Election = new(
        "elections", "election_led", "not_leader", "no_leader", ClientJson.Default.Leadership, ClientJson.Default.LeaderInfo, ClientJson.Default.LeaderInfo);

    /// <summary>The kind of a lease obtained earlier, from its type.</summary>
    public static LeaseKind Of(Lease lease) => lease switch
    {
        Client.Permit => Permit,
        RwLease => RwLock,
        Leadership => Election,
        _ => Lock,
    };

    // Relative paths, so that a service behind a path prefix (http://host/lockservice/) works; the key and token are
    // escaped so that no value can change the route.
    public string Path(string key, string? token = null) =>
        token is null ? $"{Route}/{Uri.EscapeDataString(key)}" : $"{Route}/{Uri.EscapeDataString(key)}/{Uri.EscapeDataString(token)}";
}
