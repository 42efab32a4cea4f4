using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.RegularExpressions;

namespace LockService.Client;

/// <summary>
/// The LockService HTTP contract over an <see cref="HttpClient"/>, one method per endpoint. Expected outcomes (held,
/// not held, free) are return values; errors (400, 401, 403, 429, 503, the service unreachable) are
/// <see cref="LockServiceException"/>s. Works as a typed client:
/// <c>services.AddHttpClient&lt;LockClient&gt;(c =&gt; { c.BaseAddress = ...; c.DefaultRequestHeaders.Authorization = new("Bearer", key); })</c>.
/// </summary>
public sealed partial class LockClient(HttpClient http)
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    // The longest watch a handle of this client asks for. A watch is one long request: 25 s stays well under
    // HttpClient's usual timeouts and the service's default Locks:MaxWaitMs (60 s). A service configured lower refuses
    // it (400, errors.waitMs); the bound it then names (or, worded otherwise, halving) is kept here, so that every
    // handle of this client watches within it after one refusal.
    private long _watchWaitMs = 25_000;

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
    public Task<LockHandle> AcquireAsync(
        string key, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        HoldAsync<LockHandle>(
            TimeProvider.System.GetTimestamp(),
            AcquireOnceAsync(key, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken),
            wait,
            result => new LockHeldException(key, result.RetryAfter));

    /// <summary>
    /// Holds a lease obtained otherwise (by <see cref="TryAcquireAsync"/>, or a <see cref="Permit"/>, which gives a
    /// <see cref="PermitHandle"/>): renewing, watching, releasing on dispose. <paramref name="grantedAt"/> is a
    /// <see cref="TimeProvider.GetTimestamp"/> taken before the request that granted it. Call it as soon as the answer
    /// comes: since that request may have waited in the server, the grant is counted from at most a tenth of its TTL (up
    /// to a second) before this call.
    /// </summary>
    public LockHandle Hold(Lease lease, long grantedAt) => LockHandle.For(this, lease, grantedAt, mayHaveWaited: true);

    /// <summary>One acquire request: the lease, or the holder's remaining TTL when held.</summary>
    public Task<AcquireResult> AcquireOnceAsync(
        string key, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        AcquireOnceAsync(LeaseKind.Lock, key, null, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken);

    /// <summary>Releases the lock held by <paramref name="token"/>; not released (with the reason) when it did not hold it.</summary>
    public Task<ReleaseResult> ReleaseAsync(string key, string token, CancellationToken cancellationToken = default) =>
        ReleaseAsync(LeaseKind.Lock, key, token, cancellationToken);

    /// <summary>Sets the lock's remaining TTL to <paramref name="ttl"/> (default: the TTL it was acquired with).</summary>
    public Task<ExtendResult> ExtendAsync(string key, string token, TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        ExtendAsync(LeaseKind.Lock, key, token, ttl, cancellationToken);

    /// <summary>Who holds <paramref name="key"/>; null when it is free.</summary>
    public Task<LockInfo?> InspectAsync(string key, CancellationToken cancellationToken = default) =>
        InspectAsync<LockInfo>(LeaseKind.Lock, key, cancellationToken);

    /// <summary>Whether <paramref name="token"/> still holds the lock, answered at once.</summary>
    public Task<LeaseStatus> CheckAsync(string key, string token, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Lock, key, token, TimeSpan.Zero, cancellationToken);

    /// <summary>
    /// Watches a lease: waits in the server up to <paramref name="wait"/> (at most the service's Locks:MaxWaitMs) and
    /// answers at once when <paramref name="token"/> stops holding the lock (ended, with the reason), else held.
    /// </summary>
    public Task<LeaseStatus> WatchAsync(string key, string token, TimeSpan wait, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Lock, key, token, wait, cancellationToken);

    /// <summary>One page of the held locks whose keys start with <paramref name="prefix"/> (operator endpoint).</summary>
    public Task<LockPage> ListAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        ListPageAsync("admin/locks", ClientJson.Default.LockPage, prefix, limit, cursor, cancellationToken);

    /// <summary>
    /// Every held lock whose key starts with <paramref name="prefix"/>, following cursors, each key once. A page refused by
    /// the rate limit (429) is asked for again after its Retry-After, up to 10 times in a row.
    /// </summary>
    public IAsyncEnumerable<LockInfo> ListAllAsync(string? prefix = null, int? pageSize = null, CancellationToken cancellationToken = default) =>
        FollowCursorsAsync(
            async (cursor, cancellation) =>
            {
                var page = await ListAsync(prefix, pageSize, cursor, cancellation);
                return (page.Locks, page.Cursor);
            },
            info => info.Key,
            cancellationToken);

    /// <summary>Force-releases <paramref name="key"/> whoever holds it (operator endpoint); false when it was free.</summary>
    public Task<bool> ForceReleaseAsync(string key, CancellationToken cancellationToken = default) =>
        ForceReleaseAsync(LeaseKind.Lock, "admin/locks/" + Uri.EscapeDataString(key), cancellationToken);

    /// <summary>
    /// Acquires a permit of the counting semaphore <paramref name="key"/> (at most <paramref name="limit"/> holders,
    /// 1..the service's Semaphores:MaxLimit), waiting in the server up to <paramref name="wait"/> for a place; null when
    /// <paramref name="limit"/> permits are held and the wait ran out.
    /// </summary>
    public async Task<Permit?> TryAcquirePermitAsync(
        string key, int limit, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        (Permit?)(await AcquirePermitOnceAsync(key, limit, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken)).Lease;

    /// <summary>
    /// Acquires a permit of <paramref name="key"/> and holds it as a lock is held (renewed, watched, released when
    /// disposed). Throws <see cref="PermitsHeldException"/> when <paramref name="limit"/> permits are held and
    /// <paramref name="wait"/> ran out.
    /// </summary>
    public Task<PermitHandle> AcquirePermitAsync(
        string key, int limit, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        HoldAsync<PermitHandle>(
            TimeProvider.System.GetTimestamp(),
            AcquirePermitOnceAsync(key, limit, ttl, wait, owner, maxHold, idempotencyKey, cancellationToken),
            wait,
            result => new PermitsHeldException(key, limit, result.RetryAfter));

    /// <summary>Holds a permit obtained otherwise (by <see cref="TryAcquirePermitAsync"/>), as <see cref="Hold"/> holds a lease.</summary>
    public PermitHandle HoldPermit(Permit permit, long grantedAt) => (PermitHandle)Hold(permit, grantedAt);

    /// <summary>One acquire request for a permit: the <see cref="Permit"/>, or when the earliest permit expires when full.</summary>
    public Task<AcquireResult> AcquirePermitOnceAsync(
        string key, int limit, TimeSpan? ttl = null, TimeSpan? wait = null, string? owner = null, TimeSpan? maxHold = null,
        string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        AcquireOnceAsync(LeaseKind.Permit, key, ("limit", limit.ToString(CultureInfo.InvariantCulture)), ttl, wait, owner, maxHold, idempotencyKey, cancellationToken);

    /// <summary>Releases the permit held by <paramref name="token"/>; not released (with the reason) when it did not hold it.</summary>
    public Task<ReleaseResult> ReleasePermitAsync(string key, string token, CancellationToken cancellationToken = default) =>
        ReleaseAsync(LeaseKind.Permit, key, token, cancellationToken);

    /// <summary>Sets the permit's remaining TTL to <paramref name="ttl"/> (default: the TTL it was acquired with); the lease is a <see cref="Permit"/>.</summary>
    public Task<ExtendResult> ExtendPermitAsync(string key, string token, TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        ExtendAsync(LeaseKind.Permit, key, token, ttl, cancellationToken);

    /// <summary>How many permits of <paramref name="key"/> are held and who holds them; null when none is.</summary>
    public Task<SemaphoreInfo?> InspectSemaphoreAsync(string key, CancellationToken cancellationToken = default) =>
        InspectAsync<SemaphoreInfo>(LeaseKind.Permit, key, cancellationToken);

    /// <summary>Whether <paramref name="token"/> still holds a permit of <paramref name="key"/> (its info is a <see cref="PermitInfo"/>).</summary>
    public Task<LeaseStatus> CheckPermitAsync(string key, string token, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Permit, key, token, TimeSpan.Zero, cancellationToken);

    /// <summary>Watches a permit as <see cref="WatchAsync(string, string, TimeSpan, CancellationToken)"/> watches a lock.</summary>
    public Task<LeaseStatus> WatchPermitAsync(string key, string token, TimeSpan wait, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Permit, key, token, wait, cancellationToken);

    /// <summary>Force-releases the permit in <paramref name="slot"/> of <paramref name="key"/> (operator endpoint); false when the slot was free.</summary>
    public Task<bool> ForceReleasePermitAsync(string key, int slot, CancellationToken cancellationToken = default) =>
        ForceReleaseAsync(LeaseKind.Permit, $"admin/semaphores/{Uri.EscapeDataString(key)}/{slot.ToString(CultureInfo.InvariantCulture)}", cancellationToken);

    /// <summary>
    /// One page of the semaphores with permits held whose keys start with <paramref name="prefix"/>, each with its
    /// permits as inspection shows them (operator endpoint).
    /// </summary>
    public Task<SemaphorePage> ListSemaphoresAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        ListPageAsync("admin/semaphores", ClientJson.Default.SemaphorePage, prefix, limit, cursor, cancellationToken);

    /// <summary>
    /// Every semaphore with permits held whose key starts with <paramref name="prefix"/>, following cursors, each key once;
    /// a page refused by the rate limit (429) is asked for again as <see cref="ListAllAsync"/> does.
    /// </summary>
    public IAsyncEnumerable<SemaphoreInfo> ListAllSemaphoresAsync(string? prefix = null, int? pageSize = null, CancellationToken cancellationToken = default) =>
        FollowCursorsAsync(
            async (cursor, cancellation) =>
            {
                var page = await ListSemaphoresAsync(prefix, pageSize, cursor, cancellation);
                return (page.Semaphores, page.Cursor);
            },
            semaphore => semaphore.Key,
            cancellationToken);

    /// <summary>
    /// One acquire of <paramref name="kind"/>, with the parameter that kind adds (a semaphore's <c>limit</c>, a read/write
    /// lock's <c>mode</c>, a campaign's <c>value</c>) when given.
    /// </summary>
    internal async Task<AcquireResult> AcquireOnceAsync(
        LeaseKind kind, string key, (string Name, string? Value)? kindParameter, TimeSpan? ttl, TimeSpan? wait, string? owner, TimeSpan? maxHold,
        string? idempotencyKey, CancellationToken cancellationToken)
    {
        var query = Query(
            kindParameter ?? ("", null), ("ttlMs", Ms(ttl)), ("waitMs", Ms(wait)), ("owner", owner), ("maxHoldMs", Ms(maxHold)));
        using var request = new HttpRequestMessage(HttpMethod.Post, kind.Path(key) + query);
        if (idempotencyKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
        }

        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Created)
        {
            return new AcquireResult(await ReadAsync<Lease>(response, kind.LeaseJson, cancellationToken), null);
        }

        var problem = await Problem.ReadAsync(response, cancellationToken);
        return response.StatusCode == HttpStatusCode.Conflict && problem.Code == kind.HeldCode
            ? new AcquireResult(null, problem.RetryAfter) { Leader = problem.LeaderOf(key) }
            : throw problem.ToException();
    }

    /// <summary>
    /// The handle of an acquire sent after <paramref name="started"/> (a timestamp taken before it left), or the
    /// exception <paramref name="refused"/> makes of its answer when it did not get the lease.
    /// </summary>
    private async Task<THandle> HoldAsync<THandle>(long started, Task<AcquireResult> acquiring, TimeSpan? wait, Func<AcquireResult, LockServiceException> refused)
        where THandle : LockHandle
    {
        var result = await acquiring;
        return result.Lease is { } lease ? (THandle)LockHandle.For(this, lease, started, wait > TimeSpan.Zero) : throw refused(result);
    }

    internal async Task<ReleaseResult> ReleaseAsync(LeaseKind kind, string key, string token, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, kind.Path(key, token));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return new ReleaseResult(true, null);
        }

        return new ReleaseResult(false, await NotHeldReasonAsync(response, kind.NotHeldCode, cancellationToken));
    }

    /// <summary>One extend (with an election's <c>value</c>: a proclaim).</summary>
    internal async Task<ExtendResult> ExtendAsync(
        LeaseKind kind, string key, string token, TimeSpan? ttl, CancellationToken cancellationToken, (string Name, string? Value)? kindParameter = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Patch, kind.Path(key, token) + Query(("ttlMs", Ms(ttl)), kindParameter ?? ("", null)));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return new ExtendResult(await ReadAsync<Lease>(response, kind.LeaseJson, cancellationToken), null);
        }

        return new ExtendResult(null, await NotHeldReasonAsync(response, kind.NotHeldCode, cancellationToken));
    }

    internal async Task<LeaseStatus> WatchAsync(LeaseKind kind, string key, string token, TimeSpan wait, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, kind.Path(key, token) + Query(("waitMs", wait > TimeSpan.Zero ? Ms(wait) : null)));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return new LeaseStatus(await ReadAsync<LockInfo>(response, kind.InfoJson, cancellationToken), null);
        }

        return new LeaseStatus(null, await NotHeldReasonAsync(response, kind.NotHeldCode, cancellationToken));
    }

    private async Task<T?> InspectAsync<T>(LeaseKind kind, string key, CancellationToken cancellationToken)
        where T : class
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, kind.Path(key));
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return await ReadAsync<T>(response, kind.InspectJson, cancellationToken);
        }

        await NotHeldReasonAsync(response, kind.EmptyCode, cancellationToken);
        return null;
    }

    private async Task<bool> ForceReleaseAsync(LeaseKind kind, string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, path);
        using var response = await SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NoContent)
        {
            return true;
        }

        await NotHeldReasonAsync(response, kind.NotHeldCode, cancellationToken);
        return false;
    }

    /// <summary>One page of the operator listing at <paramref name="path"/> (<c>admin/locks</c>, <c>admin/semaphores</c>).</summary>
    private async Task<TPage> ListPageAsync<TPage>(
        string path, JsonTypeInfo<TPage> type, string? prefix, int? limit, string? cursor, CancellationToken cancellationToken)
        where TPage : class
    {
        var query = Query(("prefix", prefix), ("limit", limit?.ToString(CultureInfo.InvariantCulture)), ("cursor", cursor));
        using var request = new HttpRequestMessage(HttpMethod.Get, path + query);
        using var response = await SendAsync(request, cancellationToken);
        return response.StatusCode == HttpStatusCode.OK
            ? await ReadAsync<TPage>(response, type, cancellationToken)
            : throw (await Problem.ReadAsync(response, cancellationToken)).ToException();
    }

    /// <summary>The entries of every page of a listing, <paramref name="listPage"/> asked with each cursor until it is null.</summary>
    private static async IAsyncEnumerable<T> FollowCursorsAsync<T>(
        Func<string?, CancellationToken, Task<(IReadOnlyList<T> Entries, string? Cursor)>> listPage, Func<T, string> keyOf,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // The contract lets a lock (a semaphore) held through the listing appear on more than one page; clients de-duplicate by key.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? cursor = null;
        do
        {
            var (entries, next) = await PageAsync(listPage, cursor, cancellationToken);
            foreach (var entry in entries)
            {
                if (seen.Add(keyOf(entry)))
                {
                    yield return entry;
                }
            }

            cursor = next;
        }
        while (cursor is not null);
    }

    /// <summary>The wait of a handle's watch: what the service accepts, and at most half the HTTP timeout so that the answer comes first.</summary>
    internal TimeSpan WatchWait
    {
        get
        {
            var wait = TimeSpan.FromMilliseconds(Interlocked.Read(ref _watchWaitMs));
            return Http.Timeout == Timeout.InfiniteTimeSpan || Http.Timeout > wait * 2 ? wait : Http.Timeout / 2;
        }
    }

    /// <summary>
    /// After the service refused a watch of <paramref name="refused"/> (<paramref name="error"/>: 400 with
    /// errors.waitMs): watches ask for its Locks:MaxWaitMs from now on, read from its message ("between 0 and N"), or
    /// half of <paramref name="refused"/> when the message does not say. False when that is no wait at all.
    /// </summary>
    internal bool ShrinkWatchWait(TimeSpan refused, LockServiceException error)
    {
        if (error.Status != HttpStatusCode.BadRequest || !error.Errors.TryGetValue("waitMs", out var messages))
        {
            return false;
        }

        var refusedMs = (long)refused.TotalMilliseconds;
        var bound = messages.Select(m => WaitBound().Match(m)).FirstOrDefault(m => m.Success) is { } match
            && long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var named) && named < refusedMs
            ? named
            : refusedMs / 2;
        if (bound < 1)
        {
            return false;
        }

        Interlocked.Exchange(ref _watchWaitMs, bound);
        return true;
    }

    // A page refused by the rate limit (429) is asked for again with the same cursor once Retry-After has passed: a walk of
    // many pages then outlasts a small RateLimit:PermitsPerSecond instead of failing halfway. Ten refusals in a row end it
    // with the 429, so that a bucket that others of the tenant keep empty cannot hold the walk forever; each wait is at most
    // 30 s whatever a proxy says, and 1 s when it says nothing (the service's bucket refills every second).
    private const int MaxThrottledRetries = 10;
    private static readonly TimeSpan MaxThrottledWait = TimeSpan.FromSeconds(30), DefaultThrottledWait = TimeSpan.FromSeconds(1);

    private static async Task<(IReadOnlyList<T> Entries, string? Cursor)> PageAsync<T>(
        Func<string?, CancellationToken, Task<(IReadOnlyList<T> Entries, string? Cursor)>> listPage, string? cursor, CancellationToken cancellationToken)
    {
        for (var refused = 0; ; refused++)
        {
            try
            {
                return await listPage(cursor, cancellationToken);
            }
            catch (LockServiceThrottledException ex) when (refused < MaxThrottledRetries)
            {
                var wait = ex.RetryAfter is { } after && after > TimeSpan.Zero ? after : DefaultThrottledWait;
                await Task.Delay(wait < MaxThrottledWait ? wait : MaxThrottledWait, cancellationToken);
            }
        }
    }

    internal static string? Ms(TimeSpan? value) =>
        value is { } v ? ((long)Math.Ceiling(v.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) : null;

    private static Uri WithTrailingSlash(Uri uri) =>
        uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");

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

    /// <summary>
    /// The body as <typeparamref name="T"/>, read with <paramref name="type"/> (a type derived from it where a kind says
    /// so). A success whose body is not that JSON (a proxy's maintenance page answered 200) is no answer of the service:
    /// an <see cref="LockServiceUnavailableException"/>, which callers retry as they retry an unreachable service.
    /// </summary>
    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo type, CancellationToken cancellationToken)
        where T : class
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        object? value = null;
        if (mediaType is not null && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            try
            {
                value = await JsonSerializer.DeserializeAsync(body, type, cancellationToken);
            }
            catch (JsonException)
            {
                // Reported below, as any other body that is not the contract's.
            }
        }

        return value as T ?? throw new LockServiceUnavailableException(
            response.StatusCode,
            null,
            $"The service at {response.RequestMessage?.RequestUri?.GetLeftPart(UriPartial.Authority)} answered {(int)response.StatusCode} with {mediaType ?? "no content type"}, not the JSON body of the contract (a proxy's page?).",
            null);
    }

    /// <summary>The reason of a <c>404</c> with <paramref name="code"/> (<c>lock_not_held</c>, ...); any other answer is an error.</summary>
    private static async Task<LeaseEndReason> NotHeldReasonAsync(HttpResponseMessage response, string code, CancellationToken cancellationToken)
    {
        var problem = await Problem.ReadAsync(response, cancellationToken);
        if (response.StatusCode != HttpStatusCode.NotFound || problem.Code != code)
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

    [GeneratedRegex("between 0 and ([0-9]+)", RegexOptions.CultureInvariant)]
    private static partial Regex WaitBound();
}
