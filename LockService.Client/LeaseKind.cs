using System.Text.Json.Serialization.Metadata;

namespace LockService.Client;

/// <summary>
/// What a lease is of: a lock (<c>/locks/{key}</c>) or a permit of a counting semaphore (<c>/semaphores/{key}</c>,
/// acquired with <c>limit</c>). The contract gives both the same calls; they differ only in these routes, codes and
/// bodies, so that <see cref="LockClient"/> and <see cref="LockHandle"/> serve both with one piece of code.
/// </summary>
/// <param name="Route">The routes' first segment.</param>
/// <param name="HeldCode">The 409 code of an acquire whose wait ran out.</param>
/// <param name="NotHeldCode">The 404 code for a token that does not hold it (with <c>reason</c>), and of a force-release of a free one.</param>
/// <param name="EmptyCode">The 404 code of an inspection when nothing is held.</param>
/// <param name="LeaseJson">The body of acquire and extend: <see cref="Lease"/>, or <see cref="Client.Permit"/>.</param>
/// <param name="InfoJson">The body of check and watch: <see cref="LockInfo"/>, or <see cref="PermitInfo"/>.</param>
/// <param name="InspectJson">The body of inspection: <see cref="LockInfo"/>, or <see cref="SemaphoreInfo"/>.</param>
internal sealed record LeaseKind(
    string Route, string HeldCode, string NotHeldCode, string EmptyCode, JsonTypeInfo LeaseJson, JsonTypeInfo InfoJson, JsonTypeInfo InspectJson)
{
    public static readonly LeaseKind Lock = new(
        "locks", "lock_held", "lock_not_held", "lock_not_held", ClientJson.Default.Lease, ClientJson.Default.LockInfo, ClientJson.Default.LockInfo);

    public static readonly LeaseKind Permit = new(
        "semaphores", "semaphore_full", "permit_not_held", "semaphore_empty", ClientJson.Default.Permit, ClientJson.Default.PermitInfo, ClientJson.Default.SemaphoreInfo);

    /// <summary>The kind of a lease obtained earlier, from its type.</summary>
    public static LeaseKind Of(Lease lease) => lease is Client.Permit ? Permit : Lock;

    // Relative paths, so that a service behind a path prefix (http://host/lockservice/) works; the key and token are
    // escaped so that no value can change the route.
    public string Path(string key, string? token = null) =>
        token is null ? $"{Route}/{Uri.EscapeDataString(key)}" : $"{Route}/{Uri.EscapeDataString(key)}/{Uri.EscapeDataString(token)}";
}
