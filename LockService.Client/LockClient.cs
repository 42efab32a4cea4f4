using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace LockService.Client;

/// <summary>
/// The LockService HTTP contract over an <see cref="HttpClient"/>, one method per endpoint. Expected outcomes (held,
/// not held, free) are return values; errors (400, 401, 403, 429, 503, the service unreachable) are
/// <see cref="LockServiceException"/>s. Works as a typed client:
/// <c>services.AddHttpClient&lt;LockClient&gt;(c =&gt; { c.BaseAddress = ...; c.DefaultRequestHeaders.Authorization = new("Bearer", key); })</c>.
/// </summary>
public sealed class LockClient(HttpClient http)
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>The underlying client (its BaseAddress is the service's URL).</summary>
    public HttpClient Http { get; } = http;

    /// <summary>A client for <paramref name="baseAddress"/>, sending <paramref name="apiKey"/> as a bearer token when given.</summary>
    public static LockClient Create(Uri baseAddress, string? apiKey = null, HttpMessageHandler? handler = null)
    {
        // Waiting acquires and watches are long requests by design: the contract bounds them (waitMs), not the client.
        var http = handler is null ? new HttpClient() : new HttpClient(handler);
        http.Timeout = TimeSpan.FromMinutes(2);
        http.BaseAddress = WithTrailingSlash(baseAddress);
        if (apiKey is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return new LockClient(http);
    }

    /// <summary>
    /// Acquires <paramref name="key"/>, waiting in the server up to <paramref name="wait"/>; null when it is held by
    /// someone else and the wait ran out.
    /// </summary>
    public async Task<Lease?> TryAcquireAsync(
        string key, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        (await AcquireOnceAsync(key, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken)).Lease;

    /// <summary>
    /// Acquires <paramref name="key"/> and holds it: the handle renews it (every TTL/3), watches it, and releases it
    /// when disposed. Throws <see cref="LockHeldException"/> when it is held and <paramref name="wait"/> ran out.
    /// </summary>
    public async Task<LockHandle> AcquireAsync(
        string key, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default)
    {
        var started = TimeProvider.System.GetTimestamp();
        var result = await AcquireOnceAsync(key, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken);
        return result.Lease is { } lease ? new LockHandle(this, lease, started) : throw new LockHeldException(key, result.RetryAfter);
    }

    /// <summary>
    /// Holds a lease obtained otherwise (by <see cref="TryAcquireAsync"/>): renewing, watching, releasing on dispose.
    /// <paramref name="grantedAt"/> is a <see cref="TimeProvider.GetTimestamp"/> taken before the request that granted it.
    /// </summary>
    public LockHandle Hold(Lease lease, long grantedAt) => new(this, lease, grantedAt);

    /// <summary>One acquire request: the lease, or the holder's remaining TTL when held.</summary>
    public async Task<AcquireResult> AcquireOnceAsync(
        string key, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default)
    {
        var query = Query(("ttlMs", Ms(ttl)), ("waitMs", Ms(wait)), ("owner", owner), ("maxHoldMs", Ms(maxHold)));
        using var request = new HttpRequestMessage(HttpMethod.Post, LockPath(key) + query);
        if (idempotencyKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
        }

        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Created)
        {
            return new AcquireResult(await ReadAsync(response, ClientJson.Default.Lease, cancellationToken), null);
        }

        var problem = await Problem.ReadAsync(response, cancellationToken);
        return response.StatusCode == HttpStatusCode.Conflict && problem.Code == "lock_held"
            ? new AcquireResult(null, problem.RetryAfter)
            : throw problem.ToException();
    }

    /// <summary>Releases the lock held by <paramref name="token"/>; not released (with the reason) when it did not hold it.</summary>
    public async Task<ReleaseResult> ReleaseAsync(string key, string token, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, LockPath(key, token));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return new ReleaseResult(true, null);
        }

        return new ReleaseResult(false, await NotHeldReasonAsync(response, cancellationToken));
    }

    /// <summary>Sets the lock's remaining TTL to <paramref name="ttl"/> (default: the TTL it was acquired with).</summary>
    public async Task<ExtendResult> ExtendAsync(string key, string token, TimeSpan? ttl = null, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Patch, LockPath(key, token) + Query(("ttlMs", Ms(ttl))));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return new ExtendResult(await ReadAsync(response, ClientJson.Default.Lease, cancellationToken), null);
        }

        return new ExtendResult(null, await NotHeldReasonAsync(response, cancellationToken));
    }

    /// <summary>Who holds <paramref name="key"/>; null when it is free.</summary>
    public async Task<LockInfo?> InspectAsync(string key, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, LockPath(key));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return await ReadAsync(response, ClientJson.Default.LockInfo, cancellationToken);
        }

        await NotHeldReasonAsync(response, cancellationToken);
        return null;
    }

    /// <summary>Whether <paramref name="token"/> still holds the lock, answered at once.</summary>
    public Task<LeaseStatus> CheckAsync(string key, string token, CancellationToken cancellationToken = default) =>
        WatchAsync(key, token, TimeSpan.Zero, cancellationToken);

    /// <summary>
    /// Watches a lease: waits in the server up to <paramref name="wait"/> (at most the service's Locks:MaxWaitMs) and
    /// answers at once when <paramref name="token"/> stops holding the lock (ended, with the reason), else held.
    /// </summary>
    public async Task<LeaseStatus> WatchAsync(string key, string token, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, LockPath(key, token) + Query(("waitMs", wait > TimeSpan.Zero ? Ms(wait) : null)));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return new LeaseStatus(await ReadAsync(response, ClientJson.Default.LockInfo, cancellationToken), null);
        }

        return new LeaseStatus(null, await NotHeldReasonAsync(response, cancellationToken));
    }

    /// <summary>One page of the held locks whose keys start with <paramref name="prefix"/> (operator endpoint).</summary>
    public async Task<LockPage> ListAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default)
    {
        var query = Query(("prefix", prefix), ("limit", limit?.ToString(CultureInfo.InvariantCulture)), ("cursor", cursor));
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/locks" + query);
        using var response = await SendAsync(request, cancellationToken);
        return response.StatusCode == HttpStatusCode.OK
            ? await ReadAsync(response, ClientJson.Default.LockPage, cancellationToken)
            : throw (await Problem.ReadAsync(response, cancellationToken)).ToException();
    }

    /// <summary>Every held lock whose key starts with <paramref name="prefix"/>, following cursors, each key once.</summary>
    public async IAsyncEnumerable<LockInfo> ListAllAsync(string? prefix = null, int? pageSize = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // The contract lets a lock held through the listing appear on more than one page; clients de-duplicate by key.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? cursor = null;
        do
        {
            var page = await ListAsync(prefix, pageSize, cursor, cancellationToken);
            foreach (var info in page.Locks)
            {
                if (seen.Add(info.Key))
                {
                    yield return info;
                }
            }

            cursor = page.Cursor;
        }
        while (cursor is not null);
    }

    /// <summary>Force-releases <paramref name="key"/> whoever holds it (operator endpoint); false when it was free.</summary>
    public async Task<bool> ForceReleaseAsync(string key, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "admin/locks/" + Uri.EscapeDataString(key));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return true;
        }

        await NotHeldReasonAsync(response, cancellationToken);
        return false;
    }

    internal static string? Ms(TimeSpan? value) =>
        value is { } v ? ((long)Math.Ceiling(v.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) : null;

    private static Uri WithTrailingSlash(Uri uri) =>
        uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");

    // Relative paths, so that a service behind a path prefix (http://host/lockservice/) works; the key and token are
    // escaped so that no value can change the route.
    private static string LockPath(string key, string? token = null) =>
        token is null ? "locks/" + Uri.EscapeDataString(key) : $"locks/{Uri.EscapeDataString(key)}/{Uri.EscapeDataString(token)}";

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var query = new StringBuilder();
        foreach (var (name, value) in parameters)
        {
            if (value is not null)
            {
                query.Append(query.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
            }
        }

        return query.ToString();
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        return await JsonSerializer.DeserializeAsync(body, type, cancellationToken)
            ?? throw new LockServiceException(response.StatusCode, null, "The service answered with an empty body.");
    }

    /// <summary>The reason of a <c>404 lock_not_held</c>; any other answer is an error.</summary>
    private static async Task<LeaseEndReason> NotHeldReasonAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var problem = await Problem.ReadAsync(response, cancellationToken);
        if (response.StatusCode != HttpStatusCode.NotFound || problem.Code != "lock_not_held")
        {
            throw problem.ToException();
        }

        return problem.Reason switch
        {
            "released" => LeaseEndReason.Released,
            "forced" => LeaseEndReason.Forced,
            "expired" => LeaseEndReason.Expired,
            _ => LeaseEndReason.Unknown,
        };
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        try
        {
            return await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new LockServiceUnavailableException(null, null, $"The lock service at {Http.BaseAddress} could not be reached: {ex.Message}", null, ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LockServiceUnavailableException(null, null, $"The lock service at {Http.BaseAddress} did not answer within {Http.Timeout.TotalSeconds:0} s.", null, ex);
        }
    }
}
