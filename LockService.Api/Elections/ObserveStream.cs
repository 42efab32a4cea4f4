using System.Text;
using System.Text.Json;
using LockService.Api.Locks;
using LockService.Core.Elections;

namespace LockService.Api.Elections;

/// <summary>
/// An observer's Server-Sent Events stream (<c>GET /elections/{name}</c> with <c>Accept: text/event-stream</c>): the
/// current state first (unless the client's <c>Last-Event-ID</c> names it), then the state after each change, as
/// <c>event: leader</c> (the leader's body) or <c>event: no-leader</c> (<c>{"name"}</c>), each with the state's id, and a
/// comment at every heartbeat (<see cref="ElectionObservers.HeartbeatPeriod"/>, within the 15 s that keep proxies from
/// closing an idle stream). The observer shares its name's subscription and reader with every other observer of the
/// name on this instance; it holds its place among the observers until the stream ends.
/// </summary>
internal sealed class ObserveStream(ElectionObserver observer) : IResult
{
    public async Task ExecuteAsync(HttpContext http)
    {
        using var held = observer;
        var stopping = http.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        // A client that vanished without closing (its host gone, its network silent) stops acknowledging the heartbeats: its
        // connection drops within seconds of the next one, and gives back its place among the observers.
        LeaseStream.BoundUnacknowledgedData(http);
        var response = http.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = LeaseStream.MediaType;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stopping);
        try
        {
            // The headers go out at once, also when the client already knows the current state (its Last-Event-ID).
            await WriteAsync(response, ": observing\n\n", stop.Token);
            while (true)
            {
                var state = await observer.NextAsync(stop.Token);
                await WriteAsync(response, state is null ? ": heartbeat\n\n" : EventOf(state), stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client is gone, or the instance stops: an observer holds nothing to give back but its place.
        }
    }

    /// <summary>The event that reports <paramref name="state"/>: its name, its id, its data on one line.</summary>
    public static string EventOf(ElectionState state) => state.Leader is { } leader
        ? $"event: leader\nid: {state.Id}\ndata: {JsonSerializer.Serialize(LeaderResponse.From(leader), ElectionJsonContext.Default.LeaderResponse)}\n\n"
        : $"event: no-leader\nid: {state.Id}\ndata: {JsonSerializer.Serialize(new NoLeaderEvent(state.Name), ElectionJsonContext.Default.NoLeaderEvent)}\n\n";

    private static async ValueTask WriteAsync(HttpResponse response, string text, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
