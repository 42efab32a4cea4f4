using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using LockService.Api.Observability;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// The real service in-process: in the test server, or on a real Kestrel port when a test needs two
/// instances or a socket it can drop. Every log event is captured, rendered the way the shipped sinks
/// render it, so tests can search the log output for secrets.
/// </summary>
public sealed class LockServiceFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private readonly bool _waitForRedis;
    private readonly Lazy<Task<OpenApiContract>> _contract;

    /// <param name="waitForRedis">
    /// Start the tests only once the service reaches Redis. On a loaded machine the connect can outlast the first
    /// request, whose answer is then a correct 503 but not what the test is about. Off for tests of a Redis that is down.
    /// </param>
    public LockServiceFactory(string redisConnectionString, IDictionary<string, string?>? settings = null, bool kestrel = false, bool waitForRedis = true)
    {
        _waitForRedis = waitForRedis;
        _settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Redis:ConnectionString"] = redisConnectionString,
            ["Redis:TimeoutMs"] = "1000",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }

        if (kestrel)
        {
            // An endpoint of Kestrel's own options, not UseKestrel(0): with a port, the factory rewrites the server's
            // addresses after building the host, while the minimal-API program is already binding on its own thread,
            // and loses that race now and then ("IServerAddressesFeature.Addresses cannot be modified after the server
            // has started"). Port 0 on loopback: the OS picks a free port, read back from the server's addresses.
            UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        }

        _contract = new(() => OpenApiContract.LoadAsync(CreateDefaultClient(BaseAddress)));
    }

    /// <summary>
    /// A client whose every answer is checked against the OpenAPI document this service serves (read once per
    /// factory), so that the document stays true to the service: hides the factory's own CreateClient, so that no
    /// test of the API reaches it unchecked.
    /// </summary>
    public new HttpClient CreateClient() => CreateDefaultClient(BaseAddress, new OpenApiConformanceHandler(() => _contract.Value));

    public CapturedLog Log { get; } = new();

    /// <summary>
    /// Settings that put the head's safety re-check (<c>Locks:RecheckMs</c>, default 1 s) a minute away. A test of a
    /// wake-up (pub/sub, the expiry timer) then gives it a bound of seconds, which a loaded machine does not break,
    /// and which still fails when the wake-up does not come: the re-check, the TTL or waitMs would answer far later.
    /// </summary>
    public static Dictionary<string, string?> WithoutRecheck() => new() { ["Locks:RecheckMs"] = "60000" };

    /// <summary>Base address of the real Kestrel port (kestrel mode), after the server started.</summary>
    public Uri BaseAddress
    {
        get
        {
            StartServer();
            return ClientOptions.BaseAddress;
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        // Also as host settings, which reach the program as arguments: Program decides at registration what to add
        // (authentication only with API keys), and the in-memory source below is applied only when the host is built.
        foreach (var (key, value) in _settings.Where(s => s.Value is not null))
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureAppConfiguration(config => config.AddInMemoryCollection(_settings));
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton<ILogEventSink>(Log);
            if (_waitForRedis)
            {
                services.AddHostedService<WaitForRedis>();
            }
        });
    }

    /// <summary>Holds the host's start until the engine's ping succeeds (at most 20 s; a test then fails on its own terms).</summary>
    private sealed class WaitForRedis(LockService.Core.Leases.LeaseEngine engine) : Microsoft.Extensions.Hosting.IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (DateTime.UtcNow < deadline)
            {
                try
                {
                    await engine.PingAsync();
                    return;
                }
                catch (Exception ex) when (LockService.Core.Leases.RedisFaults.IsUnavailable(ex))
                {
                    await Task.Delay(50, cancellationToken);
                }
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Log events as the console sinks would write them, in both shipped formats.</summary>
public sealed class CapturedLog : ILogEventSink
{
    private static readonly MessageTemplateTextFormatter Text = new(Logging.TextTemplate, CultureInfo.InvariantCulture);
    private static readonly CompactJsonFormatter Json = new();
    private readonly ConcurrentQueue<string> _lines = new();

    public void Emit(LogEvent logEvent)
    {
        using var text = new StringWriter();
        Text.Format(logEvent, text);
        Json.Format(logEvent, text);
        _lines.Enqueue(text.ToString());
    }

    public string All => string.Join(Environment.NewLine, _lines);

    public IReadOnlyCollection<string> Lines => _lines;
}

public static class LockServiceFactoryExtensions
{
    public static TestLocks Engine(this LockServiceFactory factory) =>
        new(Get<LockService.Core.Leases.LeaseEngine>(factory), Get<LockService.Core.Locks.LockStore>(factory));

    public static TestSemaphores Semaphores(this LockServiceFactory factory) =>
        new(Get<LockService.Core.Leases.LeaseEngine>(factory), Get<LockService.Core.Semaphores.SemaphoreStore>(factory));

    /// <summary>The instance's one engine: its waiting requests and watches of every kind.</summary>
    public static LockService.Core.Leases.LeaseEngine Leases(this LockServiceFactory factory) => Get<LockService.Core.Leases.LeaseEngine>(factory);

    private static T Get<T>(LockServiceFactory factory)
        where T : notnull =>
        Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<T>(factory.Services);

    /// <summary>Waits until the instance has exactly <paramref name="count"/> requests waiting for a semaphore's permit.</summary>
    public static Task WaitForSemaphoreWaitersAsync(this LockServiceFactory factory, int count) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(factory.Semaphores().WaitingCount == count), TimeSpan.FromSeconds(10), $"{count} requests waiting for a permit");

    /// <summary>Waits until the instance has exactly <paramref name="count"/> requests waiting.</summary>
    public static Task WaitForWaitersAsync(this LockServiceFactory factory, int count) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(factory.Engine().WaitingCount == count), TimeSpan.FromSeconds(10), $"{count} waiting requests");
}
