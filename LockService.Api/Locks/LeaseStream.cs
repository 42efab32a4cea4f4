using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LockService.Api.Errors;
using LockService.Api.Observability;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.HttpResults;

namespace LockService.Api.Locks;

/// <summary>
/// A lease of any kind held by a Server-Sent Events stream: <c>event: acquired</c> with the lease, a
/// comment after every renewal, and <c>event: lost</c> with the reason when the lease ends other than by the client. The
/// connection is the lease: closing it releases it at once, and a stopping instance ends each stream with
/// <c>unavailable</c> and releases its lease. It holds its place among the instance's streams (<see cref="StreamPlace"/>)
/// until it ends.
/// </summary>
internal sealed partial class LeaseStream(StreamedLease lease, StreamPlace place) : IResult
{
    /// <summary>The media type a client asks for (<c>Accept</c>) to hold its lock by a stream.</summary>
    public const string MediaType = "text/event-stream";

    /// <summary>
    /// TCP_USER_TIMEOUT on the stream's socket: a peer that stops acknowledging data (killed host, silent network)
    /// drops the connection after this long, and with it the lock. The contract's bound is ttlMs + 10 s; renewals
    /// send data every ttlMs/3, so unacknowledged data is there to time out.
    /// </summary>
    public const int UnacknowledgedDataTimeoutMs = 10_000;

    // Linux's TCP_USER_TIMEOUT option of IPPROTO_TCP (linux/tcp.h); .NET has no named constant for it.
    private const int IpProtoTcp = 6, TcpUserTimeout = 18;

    /// <summary>
    /// True when the request's Accept header names <see cref="MediaType"/>. Read from the raw header, not the typed
    /// headers: every acquire asks, and parsing Accept into media types would cost each one allocations.
    /// </summary>
    public static bool IsWanted(HttpRequest request)
    {
        foreach (var accept in request.Headers.Accept)
        {
            if (accept is not null && accept.Contains(MediaType, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A lease of any kind held by the stream, in the place <paramref name="place"/> reserved for it; <paramref name="acquiredData"/> is its first event's data.</summary>
    public static LeaseStream For<TRequest, TLease, TInfo, TBusy>(
        LeaseEngine engine, LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseName name, TLease lease, string acquiredData, StreamPlace place)
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo =>
        new(new HeldLease<TRequest, TLease, TInfo, TBusy>(engine, store, name, lease, acquiredData), place);

    public async Task ExecuteAsync(HttpContext http)
    {
        using var held = place;
        var stopping = http.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        var logger = http.RequestServices.GetRequiredService<ILogger<LeaseStream>>();
        BoundUnacknowledgedData(http);
        var response = http.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = MediaType;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stopping);
        LeaseEnd? ended = null;
        try
        {
            await WriteAsync(response, "event: acquired\ndata: " + lease.AcquiredData + "\n\n", stop.Token);
            ended = await lease.KeepAsync(
                (ttlMs, expiresAt) => WriteAsync(response, string.Create(CultureInfo.InvariantCulture, $": renewed ttlMs={ttlMs} expiresAt={expiresAt:O}\n\n"), stop.Token),
                stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client is gone (or the instance stops) while a line was being written.
        }
        catch (Exception ex) when (RedisFaults.IsBadData(ex))
        {
            // A key of the lease now holds data this service did not write (a PERSIST, a value or a type by hand): it cannot
            // be kept as the contract says, so it is released below (if it still can be) and the client hears it is lost.
            ended = LeaseEnd.Unavailable;
            await EndHeldLeaseAsync(response, instanceStopping: false, logger);
        }
        finally
        {
            if (ended is null)
            {
                await EndHeldLeaseAsync(response, stopping.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested, logger);
            }
        }

        if (ended is { } reason)
        {
            LockMetrics.Lost(reason);
            await WriteLostAsync(response, reason, http.RequestAborted);
        }
    }

    // The lease is still held: release it at once (the client closed, or this instance stops: then it hears why).
    private async Task EndHeldLeaseAsync(HttpResponse response, bool instanceStopping, ILogger logger)
    {
        if (instanceStopping)
        {
            LockMetrics.Lost(LeaseEnd.Unavailable);
            await WriteLostAsync(response, LeaseEnd.Unavailable, CancellationToken.None);
        }

        try
        {
            await lease.ReleaseAsync();
        }
        catch (Exception ex) when (RedisFaults.IsUnavailable(ex) || RedisFaults.IsBadData(ex))
        {
            // Its TTL frees it: at most ttlMs from the last renewal (a key written by hand is no lease of this stream's).
            LogReleaseFailed(logger, ex.GetType().Name);
        }
    }

    private static async Task WriteLostAsync(HttpResponse response, LeaseEnd reason, CancellationToken cancellationToken)
    {
        try
        {
            var data = JsonSerializer.Serialize(new LostEvent(Problems.ReasonOf(reason)), LockJsonContext.Default.LostEvent);
            await WriteAsync(response, "event: lost\ndata: " + data + "\n\n", cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Nobody left to tell.
        }
    }

    private static async ValueTask WriteAsync(HttpResponse response, string text, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    internal static void BoundUnacknowledgedData(HttpContext http)
    {
        if (OperatingSystem.IsLinux() && http.Features.Get<IConnectionSocketFeature>()?.Socket is { ProtocolType: ProtocolType.Tcp } socket)
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, BitConverter.GetBytes(UnacknowledgedDataTimeoutMs));
        }
    }

    [LoggerMessage(EventId = 1010, EventName = "StreamReleaseFailed", Level = LogLevel.Warning,
        Message = "A stream's lock or permit could not be released when the stream ended ({ExceptionType}); its TTL frees it")]
    private static partial void LogReleaseFailed(ILogger logger, string exceptionType);

    private sealed class HeldLease<TRequest, TLease, TInfo, TBusy>(
        LeaseEngine engine, LeaseStore<TRequest, TLease, TInfo, TBusy> store, LeaseName name, TLease lease, string acquiredData) : StreamedLease
        where TRequest : ILeaseRequest<TRequest>
        where TLease : class, IKeptLease
        where TInfo : class, ILeaseInfo
    {
        public override string AcquiredData => acquiredData;

        public override Task<LeaseEnd?> KeepAsync(Func<long, DateTimeOffset, ValueTask> renewed, CancellationToken stop) =>
            engine.KeepAsync(store, name, lease, renewal => renewed(renewal.TtlMs, renewal.ExpiresAt), stop);

        public override Task ReleaseAsync() => store.ReleaseAsync(name, lease.Token);
    }
}

/// <summary>
/// A stream's place within the instance's bound on streams (<c>Locks:MaxStreams</c>) and its tenant's share of it, reserved
/// before the acquire, so that a stream past the bound is a 429 that acquired nothing. Disposing it gives the place back,
/// unless a stream took it (<see cref="Take"/>), which then gives it back when it ends.
/// </summary>
internal sealed class StreamPlace : IDisposable
{
    private readonly WaitBounds _bounds;
    private readonly string _tenant;
    private int _given;

    private StreamPlace(WaitBounds bounds, string tenant)
    {
        _bounds = bounds;
        _tenant = tenant;
    }

    /// <summary>Reserves a place for a stream of <paramref name="tenant"/>, or answers the 429 (with Retry-After) of the bound that has none.</summary>
    public static (StreamPlace? Place, ProblemHttpResult? NoRoom) Reserve(HttpContext http, string tenant, LeaseOptions limits)
    {
        var bounds = http.RequestServices.GetRequiredService<WaitBounds>();
        if (bounds.TryOpenStream(tenant) is var refused && refused != NoRoom.None)
        {
            http.Response.Headers.RetryAfter = "1";
            return (null, Problems.TooManyStreams(refused, limits));
        }

        return (new StreamPlace(bounds, tenant), null);
    }

    /// <summary>Hands the place to the stream that holds the lease: disposing this handle no longer gives it back.</summary>
    public StreamPlace Take() =>
        Interlocked.Exchange(ref _given, 1) == 0 ? new StreamPlace(_bounds, _tenant) : throw new InvalidOperationException("The place was given up already.");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _given, 1) == 0)
        {
            _bounds.CloseStream(_tenant);
        }
    }
}

/// <summary>What a <see cref="LeaseStream"/> holds: the data of its first event, how to keep it, how to release it.</summary>
internal abstract class StreamedLease
{
    /// <summary>The lease as JSON, for <c>event: acquired</c>.</summary>
    public abstract string AcquiredData { get; }

    /// <summary>Keeps the lease until <paramref name="stop"/> (null: still held) or its loss (why); calls <paramref name="renewed"/> with each renewal's TTL and expiry.</summary>
    public abstract Task<LeaseEnd?> KeepAsync(Func<long, DateTimeOffset, ValueTask> renewed, CancellationToken stop);

    /// <summary>Releases the lease (the stream was closed, or the instance stops).</summary>
    public abstract Task ReleaseAsync();
}
