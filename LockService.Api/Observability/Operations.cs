using LockService.Api.Auth;
using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Prometheus;

namespace LockService.Api.Observability;

/// <summary>Health, metrics and the start-up checks an operator relies on.</summary>
internal static partial class Operations
{
    public static WebApplication MapOperations(this WebApplication app)
    {
        // Liveness never looks at Redis: a Redis outage must not get healthy instances restarted.
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false }).WithTags("Health");
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = ReadyBody.WriteAsync })
            .WithTags("Health");
        app.MapMetrics("/metrics");

        // Every kind's settings are read here, before the host starts (the key spaces read each kind's section): a bad one
        // then stops the start with one line, not a failed host's log.
        _ = app.Services.GetRequiredService<IOptions<KeySpaces>>().Value;
        var engine = app.Services.GetRequiredService<LeaseEngine>();
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => LockMetrics.WaitingRequests.Set(engine.WaitingCount));
        var observers = app.Services.GetRequiredService<ElectionObservers>();
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => LockMetrics.ElectionObservers.Set(observers.Count));

        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("LockService");
        if (!app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Enabled)
        {
            LogAuthOff(logger);
        }

        return app;
    }

    /// <summary>
    /// Runs the container's health probe: GET /health/ready on this machine's port, exit 0 when ready.
    /// The runtime image has no curl or wget, so the service probes itself.
    /// </summary>
    public static async Task<int> ProbeAsync()
    {
        var port = Environment.GetEnvironmentVariable("HTTP_PORTS")?.Split(';', ',')[0] ?? "8080";
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{port}/health/ready"));
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return 1;
        }
    }

    /// <summary>
    /// True for what a bad setting throws at start: a failed validation, a value the binder could not convert, or several
    /// of those at once (the host's start validates every section, and one section read by another fails twice).
    /// </summary>
    public static bool IsInvalidConfiguration(Exception exception) => exception switch
    {
        OptionsValidationException or InvalidOperationException { InnerException: ArgumentException or FormatException } => true,
        AggregateException aggregate => aggregate.InnerExceptions.Count > 0 && aggregate.InnerExceptions.All(IsInvalidConfiguration),
        _ => false,
    };

    /// <summary>Writes one line that names the bad setting, for a service that must not start with it.</summary>
    public static int ReportInvalidConfiguration(Exception exception)
    {
        var message = exception switch
        {
            OptionsValidationException validation => string.Join(" ", validation.Failures),
            AggregateException aggregate => string.Join(" ", aggregate.InnerExceptions
                .SelectMany(e => e is OptionsValidationException v ? v.Failures : [e.Message]).Distinct()),
            _ => exception.Message,
        };
        Console.Error.WriteLine("LockService cannot start, invalid configuration: " + message.ReplaceLineEndings(" "));
        return 1;
    }

    [LoggerMessage(EventId = 1000, EventName = "AuthenticationOff", Level = LogLevel.Warning,
        Message = "Authentication is off: no Auth:ApiKeys are configured, so anyone who reaches this service can take and release any lock")]
    private static partial void LogAuthOff(ILogger logger);
}
