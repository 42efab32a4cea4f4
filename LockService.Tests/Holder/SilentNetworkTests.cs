using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Holder;

/// <summary>
/// A stream's client that goes silent (its packets dropped, as when its host or network dies) loses the lock within
/// ttlMs + 10 s: the service bounds the socket (TCP_USER_TIMEOUT) instead of renewing for a peer that is gone.
/// The client's packets are dropped by an iptables rule on loopback that matches only its own port.
/// </summary>
public sealed class SilentNetworkTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [PacketDropFact]
    public async Task A_silent_client_loses_its_stream_lock_within_ttl_plus_10_seconds()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var client = new LockClient(service.CreateClient());
        var key = Keys.Unique(nameof(A_silent_client_loses_its_stream_lock_within_ttl_plus_10_seconds));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, service.BaseAddress.Port);
        var request = $"POST /locks/{key}?ttlMs=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nContent-Length: 0\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        await ReadUntilAsync(socket, "event: acquired");
        Assert.Equal(HttpStatusCode.OK, (await client.InspectAsync(key)).Status);

        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        using (PacketDrop.From(port))
        {
            var silent = Stopwatch.StartNew();
            await RedisServer.WaitUntilAsync(
                async () => (await client.InspectAsync(key)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(30), "the silent client's lock to be free");

            // The contract's bound is ttlMs + 10 s; a few seconds more for a loaded machine. Without the socket bound
            // the service would renew for as long as the kernel retransmits (about 15 minutes by default).
            Assert.True(silent.Elapsed < TimeSpan.FromSeconds(1 + 10 + 5), $"free {silent.ElapsedMilliseconds} ms after the client went silent");
        }
    }

    internal static async Task ReadUntilAsync(Socket socket, string marker)
    {
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!seen.ToString().Contains(marker, StringComparison.Ordinal))
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(read > 0, "the connection closed before " + marker + ": " + seen);
            seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }
    }
}

/// <summary>Drops every packet from one local TCP port arriving on loopback (iptables), until disposed.</summary>
internal sealed class PacketDrop : IDisposable
{
    private readonly string[] _rule;

    private PacketDrop(string[] rule) => _rule = rule;

    public static bool Possible { get; } = CanDrop();

    public static PacketDrop From(int port)
    {
        string[] rule = ["INPUT", "-i", "lo", "-p", "tcp", "--sport", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-j", "DROP"];
        Iptables(["-A", .. rule]);
        return new PacketDrop(rule);
    }

    public void Dispose() => Iptables(["-D", .. _rule]);

    private static bool CanDrop()
    {
        try
        {
            Iptables(["-S", "INPUT"]);
            return true;
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static void Iptables(string[] arguments)
    {
        var info = new ProcessStartInfo("iptables") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"iptables {string.Join(' ', arguments)}: {error}");
        }
    }
}

/// <summary>A fact that drops packets with iptables on loopback: needs root and iptables, else skipped with the reason.</summary>
public sealed class PacketDropFactAttribute : FactAttribute
{
    public PacketDropFactAttribute() => Skip = PacketDrop.Possible ? null : "needs root and iptables (apt-get install iptables) to drop a client's packets on loopback";
}
