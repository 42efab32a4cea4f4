using System.Globalization;

namespace LockService.Bench.Http;

/// <summary>
/// Builds the request URIs of one service instance with as few intermediate strings as the Uri type allows: of its locks,
/// or, with a semaphore limit, of its semaphores (every acquire then carries that limit), or, with a read/write mode, of its
/// read/write locks (every acquire then asks for that mode).
/// </summary>
internal sealed class LockUrls
{
    private readonly string _locks;
    private readonly string _acquireSuffix;

    public LockUrls(Uri baseUrl, int? semaphoreLimit = null, string? rwMode = null)
    {
        BaseUrl = baseUrl;
        string root = baseUrl.AbsoluteUri.TrimEnd('/');
        _locks = root + (semaphoreLimit is not null ? "/semaphores/" : rwMode is not null ? "/rwlocks/" : "/locks/");
        _acquireSuffix = semaphoreLimit is int limit ? "&limit=" + limit.ToString(CultureInfo.InvariantCulture)
            : rwMode is not null ? "&mode=" + rwMode
            : string.Empty;
        Metrics = new Uri(root + "/metrics");
    }

    /// <summary>The same instance's read/write locks, every acquire asking for <paramref name="rwMode"/>.</summary>
    public LockUrls InMode(string rwMode) => new(BaseUrl, rwMode: rwMode);

    public Uri BaseUrl { get; }

    public Uri Metrics { get; }

    public static string AcquireQuery(long ttlMs, long waitMs) => waitMs > 0
        ? string.Create(CultureInfo.InvariantCulture, $"?ttlMs={ttlMs}&waitMs={waitMs}")
        : string.Create(CultureInfo.InvariantCulture, $"?ttlMs={ttlMs}");

    public static string WatchQuery(long waitMs) => string.Create(CultureInfo.InvariantCulture, $"?waitMs={waitMs}");

    /// <summary>An acquire; <paramref name="query"/> is an <see cref="AcquireQuery"/> (a semaphore's limit follows it).</summary>
    public Uri Acquire(string key, string query) => new(string.Concat(_locks, key, query, _acquireSuffix));

    public Uri Acquire(string keyPrefix, int keyNumber, string query) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{_locks}{keyPrefix}{keyNumber}{query}{_acquireSuffix}"));

    public Uri Release(string key, ReadOnlySpan<char> token) => new(string.Concat(_locks, key, "/", token));

    public Uri Release(string keyPrefix, int keyNumber, ReadOnlySpan<char> token) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{_locks}{keyPrefix}{keyNumber}/{token}"));

    public Uri Watch(string key, ReadOnlySpan<char> token, string query) => new(string.Concat(_locks, key, "/", token) + query);

    public Uri Inspect(string key) => new(_locks + key);

    public Uri Extend(string key, ReadOnlySpan<char> token, int ttlMs) =>
        new(string.Concat(_locks, key, "/", token) + "?ttlMs=" + ttlMs.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
