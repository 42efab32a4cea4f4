using System.Text.Json.Nodes;
using LockService.Api.Observability;
using Microsoft.AspNetCore.Http;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace LockService.Tests.Api;

/// <summary>The shipped JSON log format: the request line's fast path writes what Serilog's compact formatter writes.</summary>
public sealed class LogFormatTests
{
    [Theory]
    [InlineData("POST", 201, 0.853)]
    [InlineData("DELETE", 503, 1000.5)]
    [InlineData("BREW", 405, 0.01)]
    public void The_request_line_is_the_same_compact_JSON_as_Serilogs_formatter_writes(string method, int status, double elapsedMs)
    {
        var events = new List<LogEvent>();
        using var logger = new LoggerConfiguration().Enrich.WithProperty("Application", "lock\"service").WriteTo.Sink(new Collect(events)).CreateLogger();
        var http = new DefaultHttpContext { TraceIdentifier = "0HN7:0000001" };
        http.Request.Method = method;

        Logging.RequestLog.Write(logger, http, "/locks/{key}", status, elapsedMs);

        var logEvent = Assert.Single(events);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Render(new CompactJsonFormatter(), logEvent)), JsonNode.Parse(Render(new RequestLineFormatter(), logEvent))));
        Assert.EndsWith("}\n", Render(new RequestLineFormatter(), logEvent), StringComparison.Ordinal);
    }

    private static string Render(Serilog.Formatting.ITextFormatter formatter, LogEvent logEvent)
    {
        using var text = new StringWriter();
        formatter.Format(logEvent, text);
        return text.ToString();
    }

    private sealed class Collect(List<LogEvent> events) : ILogEventSink
    {
        public void Emit(LogEvent logEvent) => events.Add(logEvent);
    }
}

/// <summary>How the service wires Serilog into ASP.NET Core's logging, held so that an upgrade that changes it fails here.</summary>
public sealed class LoggingSetupTests
{
    [Fact]
    public void Loggers_are_made_once_per_category_and_hosting_diagnostics_is_off_at_every_level()
    {
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateBuilder(new Microsoft.AspNetCore.Builder.WebApplicationOptions { EnvironmentName = "Production" });
        builder.AddLockLogging();
        using var app = builder.Build();
        var factory = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(app.Services);

        // ASP.NET Core's result types ask for their logger on every response: it must not be built anew each time.
        Assert.Same(factory.CreateLogger("Microsoft.AspNetCore.Http.Result.CreatedResult"), factory.CreateLogger("Microsoft.AspNetCore.Http.Result.CreatedResult"));
        // While this category is on at any level, hosting starts an Activity and a logging scope for every request.
        Assert.False(factory.CreateLogger(Logging.HostingDiagnostics).IsEnabled(Microsoft.Extensions.Logging.LogLevel.Critical));
        // Serilog's levels still decide for everything else.
        Assert.True(factory.CreateLogger("LockService").IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information));
        Assert.False(factory.CreateLogger("Microsoft.AspNetCore.Routing").IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information));
        Assert.True(factory.CreateLogger("Microsoft.AspNetCore.Routing").IsEnabled(Microsoft.Extensions.Logging.LogLevel.Warning));
    }
}
