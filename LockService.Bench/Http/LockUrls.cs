using System.Globalization;

namespace LockService.Bench.Http;

/// <summary>Builds the request URIs of one service instance with as few intermediate strings as the Uri type allows.</summary>
internal sealed class LockUrls
{
    private readonly string _locks;

    public LockUrls(Uri baseUrl)
    {
        BaseUrl = baseUrl;
        string root = baseUrl.AbsoluteUri.TrimEnd('/');
        _locks = root + "/locks/";
        Metrics = new Uri(root + "/metrics");
    }

    public Uri BaseUrl { get; }

    public Uri Metrics { get; }

    public static string AcquireQuery(long ttlMs, long waitMs) => waitMs > 0
        ? string.Create(CultureInfo.InvariantCulture, $"?ttlMs={ttlMs}&waitMs={waitMs}")
        : string.Create(CultureInfo.InvariantCulture, $"?ttlMs={ttlMs}");

    public static string WatchQuery(long waitMs) => string.Create(CultureInfo.InvariantCulture, $"?waitMs={waitMs}");

    public Uri Acquire(string key, string query) => new(string.Concat(_locks, key, query));

    public Uri Acquire(string keyPrefix, int keyNumber, string query) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{_locks}{keyPrefix}{keyNumber}{query}"));

    public Uri Release(string key, ReadOnlySpan<char> token) => new(string.Concat(_locks, key, "/", token));

    public Uri Release(string keyPrefix, int keyNumber, ReadOnlySpan<char> token) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{_locks}{keyPrefix}{keyNumber}/{token}"));

    public Uri Watch(string key, ReadOnlySpan<char> token, string query) => new(string.Concat(_locks, key, "/", token) + query);

    public Uri Inspect(string key) => new(_locks + key);

    public Uri Extend(string key, ReadOnlySpan<char> token, int ttlMs) =>
        new(string.Concat(_locks, key, "/", token) + "?ttlMs=" + ttlMs.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
