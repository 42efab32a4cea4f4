using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using LockService.Core.Elections;
using LockService.Tests.Holder;
using LockService.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Elections;

/// <summary>
/// An observer whose client goes silent (its packets dropped, as when its host or network dies) gives back its place
/// among the instance's observers (Elections:MaxObservers) within seconds of the next heartbeat: the service bounds the
/// socket (TCP_USER_TIMEOUT) as for a lease-holding stream, instead of keeping the stream for as long as the kernel
/// retransmits (about 15 minutes by default).
/// </summary>
public sealed class SilentObserverTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [PacketDropFact]
    public async Task A_silent_observer_gives_back_its_place_within_a_heartbeat_plus_10_seconds()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var observers = service.Services.GetRequiredService<ElectionObservers>();
        var name = Keys.Unique(nameof(A_silent_observer_gives_back_its_place_within_a_heartbeat_plus_10_seconds));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        var request = $"GET /elections/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        await SilentNetworkTests.ReadUntilAsync(socket, "event: no-leader");
        Assert.Equal(1, observers.Count);

        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        using (PacketDrop.From(port))
        {
            var silent = Stopwatch.StartNew();
            await RedisServer.WaitUntilAsync(() => Task.FromResult(observers.Count == 0), TimeSpan.FromSeconds(40), "the silent observer's place to be given back");

            // The next heartbeat (at most 10 s) is data the peer never acknowledges; 10 s later the socket drops.
            Assert.True(silent.Elapsed < ElectionObservers.HeartbeatPeriod + TimeSpan.FromSeconds(10 + 5), $"given back {silent.ElapsedMilliseconds} ms after the client went silent");
        }
    }
}
