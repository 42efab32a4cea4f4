using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace LockService.Client;

/// <summary>
/// Elections (<c>/elections</c>): a campaign is an acquire of the election kind, proclaim an extend with a value, resign
/// a release, through the same code as locks; observing is a Server-Sent Events stream that reconnects by itself.
/// </summary>
public sealed partial class LockClient
{
    // An observer's reconnections: soon after a drop (an instance restarting, a proxy's idle cut), then less often while
    // the service stays away, so that many observers do not hammer a service that is coming back.
    private static readonly TimeSpan FirstReconnect = TimeSpan.FromMilliseconds(100), LastReconnect = TimeSpan.FromSeconds(5);

    // The service sends a comment at least every 15 s: three missed in a row mean a connection that went silent (a peer
    // gone without a FIN), which only a new one can tell apart from an election that does not change.
    private static readonly TimeSpan ObserveSilence = TimeSpan.FromSeconds(45);

    /// <summary>
    /// Campaigns for the leadership of <paramref name="name"/> with <paramref name="value"/> (what followers see), waiting
    /// in the server up to <paramref name="wait"/> while another candidate leads; null when one does and the wait ran out
    /// (<see cref="CampaignOnceAsync"/> says who).
    /// </summary>
    public async Task<Leadership?> TryCampaignAsync(
        string name, string? value = null, TimeSpan? ttl = null, TimeSpan? wait = null, TimeSpan? maxHold = null, string? idempotencyKey = null,
        CancellationToken cancellationToken = default) =>
        (Leadership?)(await CampaignOnceAsync(name, value, ttl, wait, maxHold, idempotencyKey, cancellationToken)).Lease;

    /// <summary>
    /// Campaigns for <paramref name="name"/> and holds the leadership as a lock is held: renewed, watched
    /// (<see cref="LockHandle.LostToken"/> fires on its loss), resigned when disposed. Throws
    /// <see cref="ElectionLedException"/> (with the leader) when another candidate leads and <paramref name="wait"/> ran out.
    /// </summary>
    public Task<CampaignHandle> CampaignAsync(
        string name, string? value = null, TimeSpan? ttl = null, TimeSpan? wait = null, TimeSpan? maxHold = null, string? idempotencyKey = null,
        CancellationToken cancellationToken = default) =>
        HoldAsync<CampaignHandle>(
            TimeProvider.System.GetTimestamp(),
            CampaignOnceAsync(name, value, ttl, wait, maxHold, idempotencyKey, cancellationToken),
            wait,
            result => new ElectionLedException(name, result.Leader, result.RetryAfter));

    /// <summary>Holds a leadership obtained otherwise (by <see cref="TryCampaignAsync"/>), as <see cref="Hold"/> holds a lease.</summary>
    public CampaignHandle HoldLeadership(Leadership leadership, long grantedAt) => (CampaignHandle)Hold(leadership, grantedAt);

    /// <summary>One campaign request: the <see cref="Leadership"/>, or the leader (<see cref="AcquireResult.Leader"/>) and when its term runs out.</summary>
    public Task<AcquireResult> CampaignOnceAsync(
        string name, string? value = null, TimeSpan? ttl = null, TimeSpan? wait = null, TimeSpan? maxHold = null, string? idempotencyKey = null,
        CancellationToken cancellationToken = default) =>
        AcquireOnceAsync(LeaseKind.Election, name, ("value", value), ttl, wait, null, maxHold, idempotencyKey, cancellationToken);

    /// <summary>
    /// Proclaims: sets the leader's value to <paramref name="value"/> (unchanged when null) and extends its term to
    /// <paramref name="ttl"/> (default: the TTL it campaigned with); not extended (with the reason) when this token does not lead.
    /// </summary>
    public Task<ExtendResult> ProclaimAsync(string name, string token, string? value, TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        ExtendAsync(LeaseKind.Election, name, token, ttl, cancellationToken, ("value", value));

    /// <summary>Resigns the leadership held by <paramref name="token"/>; not released (with the reason) when it does not lead.</summary>
    public Task<ReleaseResult> ResignAsync(string name, string token, CancellationToken cancellationToken = default) =>
        ReleaseAsync(LeaseKind.Election, name, token, cancellationToken);

    /// <summary>Who leads <paramref name="name"/> now; null when nobody does.</summary>
    public Task<LeaderInfo?> LeaderAsync(string name, CancellationToken cancellationToken = default) =>
        InspectAsync<LeaderInfo>(LeaseKind.Election, name, cancellationToken);

    /// <summary>Whether <paramref name="token"/> still leads <paramref name="name"/> (its info is a <see cref="LeaderInfo"/>).</summary>
    public Task<LeaseStatus> CheckLeadershipAsync(string name, string token, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Election, name, token, TimeSpan.Zero, cancellationToken);

    /// <summary>Watches a leadership as <see cref="WatchAsync(string, string, TimeSpan, CancellationToken)"/> watches a lock.</summary>
    public Task<LeaseStatus> WatchLeadershipAsync(string name, string token, TimeSpan wait, CancellationToken cancellationToken = default) =>
        WatchAsync(LeaseKind.Election, name, token, wait, cancellationToken);

    /// <summary>Forces the leader of <paramref name="name"/> out (operator endpoint); false when nobody led.</summary>
    public Task<bool> ForceResignAsync(string name, CancellationToken cancellationToken = default) =>
        ForceReleaseAsync(LeaseKind.Election, "admin/elections/" + Uri.EscapeDataString(name), cancellationToken);

    /// <summary>One page of the elections with a leader whose names start with <paramref name="prefix"/> (operator endpoint).</summary>
    public Task<ElectionPage> ListElectionsAsync(string? prefix = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        ListPageAsync("admin/elections", ClientJson.Default.ElectionPage, prefix, limit, cursor, cancellationToken);

    /// <summary>Every election with a leader whose name starts with <paramref name="prefix"/>, each name once, as <see cref="ListAllAsync"/> walks locks.</summary>
    public IAsyncEnumerable<LeaderInfo> ListAllElectionsAsync(string? prefix = null, int? pageSize = null, CancellationToken cancellationToken = default) =>
        FollowCursorsAsync(
            async (cursor, cancellation) =>
            {
                var page = await ListElectionsAsync(prefix, pageSize, cursor, cancellation);
                return (page.Elections, page.Cursor);
            },
            leader => leader.Name,
            cancellationToken);

    /// <summary>
    /// Observes <paramref name="name"/>: the state when observing begins, then one event per change (a new term, a new
    /// value, nobody leading), until cancelled. A dropped or silent connection, a 503 or a 429 is followed by a
    /// reconnection with <c>Last-Event-ID</c>, so that the next event is the current state only if it differs from the
    /// last one yielded; <paramref name="interrupted"/> hears of each such interruption. Errors a reconnection cannot
    /// mend (400, 401, 403) are thrown.
    /// </summary>
    public async IAsyncEnumerable<ElectionEvent> ObserveAsync(
        string name, Action<LockServiceException>? interrupted = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? lastId = null;
        var backoff = FirstReconnect;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan? retryAfter = null;
            using (var silence = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                using var stream = await OpenObserverAsync(name, lastId, silence, cancellationToken);
                if (stream.Problem is { } problem)
                {
                    interrupted?.Invoke(problem);
                    retryAfter = (problem as LockServiceThrottledException)?.RetryAfter ?? (problem as LockServiceUnavailableException)?.RetryAfter;
                }
                else
                {
                    backoff = FirstReconnect;
                    while (await stream.NextAsync(name, silence, cancellationToken) is { } next)
                    {
                        if (next.Id is null || next.Id != lastId)
                        {
                            lastId = next.Id ?? lastId;
                            yield return next;
                        }
                    }

                    interrupted?.Invoke(stream.Ended ?? new LockServiceUnavailableException(null, null, $"The observe stream of '{name}' ended.", null));
                }
            }

            var delay = retryAfter is { } after && after > TimeSpan.Zero ? (after < LastReconnect ? after : LastReconnect) : backoff;
            await Task.Delay(delay, cancellationToken);
            backoff = backoff * 2 < LastReconnect ? backoff * 2 : LastReconnect;
        }
    }

    /// <summary>
    /// Opens an observer's stream, resuming after <paramref name="lastId"/>; a failure to open it that a reconnection may
    /// mend (unreachable, 503, 429, a proxy's page) is <see cref="ObserverStream.Problem"/>, any other is thrown.
    /// </summary>
    private async Task<ObserverStream> OpenObserverAsync(string name, string? lastId, CancellationTokenSource silence, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, LeaseKind.Election.Path(name));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastId);
        }

        silence.CancelAfter(ObserveSilence);
        HttpResponseMessage? response = null;
        try
        {
            response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, silence.Token);
            if (response.StatusCode == HttpStatusCode.OK && response.Content.Headers.ContentType?.MediaType == "text/event-stream")
            {
                var reader = new StreamReader(await response.Content.ReadAsStreamAsync(silence.Token), Encoding.UTF8);
                return new ObserverStream(response, reader, null);
            }

            var error = response.StatusCode == HttpStatusCode.OK
                ? new LockServiceUnavailableException(response.StatusCode, null, $"The service at {Http.BaseAddress} answered an observer with {response.Content.Headers.ContentType?.MediaType ?? "no content type"}, not an event stream (a proxy's page?).", null)
                : (await Problem.ReadAsync(response, silence.Token)).ToException();
            response.Dispose();
            return error is LockServiceUnavailableException or LockServiceThrottledException ? new ObserverStream(null, null, error) : throw error;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            response?.Dispose();
            return new ObserverStream(null, null, new LockServiceUnavailableException(null, null, $"The lock service at {Http.BaseAddress} could not be reached to observe '{name}': {ex.Message}", null, ex));
        }
    }

    /// <summary>An observer's open stream (or why it could not be opened), read one event at a time.</summary>
    private sealed class ObserverStream(HttpResponseMessage? response, StreamReader? reader, LockServiceException? problem) : IDisposable
    {
        public LockServiceException? Problem { get; } = problem;

        /// <summary>Why the stream ended, when it ended otherwise than by the service closing it.</summary>
        public LockServiceException? Ended { get; private set; }

        /// <summary>
        /// The next event, or null when the stream ended (closed, dropped, or silent for longer than the heartbeats
        /// allow). Every line read, comments included, proves the connection alive and restarts the silence bound.
        /// </summary>
        public async Task<ElectionEvent?> NextAsync(string name, CancellationTokenSource silence, CancellationToken cancellationToken)
        {
            string? kind = null, id = null;
            var data = new StringBuilder();
            try
            {
                while (await reader!.ReadLineAsync(silence.Token) is { } line)
                {
                    silence.CancelAfter(ObserveSilence);
                    if (line.Length == 0)
                    {
                        if (kind is "leader" or "no-leader" && data.Length > 0)
                        {
                            return Event(name, kind, id, data.ToString());
                        }

                        (kind, id) = (null, null);
                        data.Clear();
                        continue;
                    }

                    // "field: value" or "field:value" (Server-Sent Events); a line starting with ':' is a comment.
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    var field = colon < 0 ? line : line[..colon];
                    var value = colon < 0 ? "" : line[(colon + 1)..];
                    value = value.StartsWith(' ') ? value[1..] : value;
                    switch (field)
                    {
                        case "event":
                            kind = value;
                            break;
                        case "id":
                            id = value;
                            break;
                        case "data":
                            data.Append(data.Length > 0 ? "\n" : "").Append(value);
                            break;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                Ended = new LockServiceUnavailableException(null, null, $"The observe stream of '{name}' broke off: {ex.Message}", null, ex);
            }

            return null;
        }

        public void Dispose()
        {
            reader?.Dispose();
            response?.Dispose();
        }

        private static ElectionEvent Event(string name, string kind, string? id, string data)
        {
            using var json = JsonDocument.Parse(data);
            var leader = kind == "leader" ? json.RootElement.Deserialize(ClientJson.Default.LeaderInfo) : null;
            return new ElectionEvent(name, id, leader, json.RootElement.Clone());
        }
    }
}
