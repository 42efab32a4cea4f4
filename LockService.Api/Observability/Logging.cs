using System.Text.RegularExpressions;
using LockService.Core.Locks;
using Serilog;
using Serilog.Configuration;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace LockService.Api.Observability;

/// <summary>
/// Serilog from configuration: compact JSON on stdout outside Development, readable text in Development,
/// one request line per request with the route template (never the raw path, which holds tokens).
/// </summary>
internal static partial class Logging
{
    public const string TextTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}";

    public static WebApplicationBuilder AddLockLogging(this WebApplicationBuilder builder)
    {
        var development = builder.Environment.IsDevelopment();
        builder.Services.AddSerilog((services, logger) =>
        {
            // Safe without any appsettings.json (the service started from another directory): the framework's own
            // request logs, which carry raw paths, stay off unless configuration turns them on.
            logger.MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
                .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
                .MinimumLevel.Override("System", LogEventLevel.Warning);
            logger.ReadFrom.Configuration(builder.Configuration)
                .ReadFrom.Services(services)
                .Enrich.FromLogContext()
                .Enrich.With<TokenRedactor>();
            if (development)
            {
                logger.WriteTo.Console(outputTemplate: TextTemplate, formatProvider: System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                // Written in batches off the request path: one write per batch instead of a locked write and
                // flush per request. A line may lag by up to 100 ms; past 100,000 queued events new ones are dropped.
                logger.WriteTo.Sink(new BatchedConsoleSink(new CompactJsonFormatter()), new BatchingOptions
                {
                    BatchSizeLimit = 1000,
                    BufferingTimeLimit = TimeSpan.FromMilliseconds(100),
                    QueueLimit = 100_000,
                });
            }
        });
        return builder;
    }

    public static IApplicationBuilder UseLockRequestLogging(this IApplicationBuilder app) =>
        app.UseSerilogRequestLogging(options =>
        {
            // This host's logger, not Serilog's static one (which the last host built in a process would own).
            options.Logger = app.ApplicationServices.GetRequiredService<Serilog.ILogger>();
            options.MessageTemplate = "HTTP {RequestMethod} {RouteTemplate} responded {StatusCode} in {Elapsed:0.000} ms";
            options.GetMessageTemplateProperties = (http, _, elapsed, status) =>
            [
                new LogEventProperty("RequestMethod", new ScalarValue(http.Request.Method)),
                new LogEventProperty("RouteTemplate", new ScalarValue(RouteTemplateOf(http))),
                new LogEventProperty("StatusCode", new ScalarValue(status)),
                new LogEventProperty("Elapsed", new ScalarValue(elapsed)),
            ];
        });

    private static string RouteTemplateOf(HttpContext http) =>
        (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";

    /// <summary>
    /// A last line of defence: any 32-hex-character run in a logged string (the shape of a lock token) is
    /// replaced, so a token that reaches a log property by a path nobody foresaw is still not written out.
    /// </summary>
    private sealed partial class TokenRedactor : ILogEventEnricher
    {
        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
        {
            // ASP.NET Core's request scope carries the raw path, token included; the route template says enough.
            logEvent.RemovePropertyIfPresent("RequestPath");
            List<LogEventProperty>? changed = null;
            foreach (var (name, value) in logEvent.Properties)
            {
                if (value is ScalarValue { Value: string { Length: >= LockToken.Length } text } && TokenShape().IsMatch(text))
                {
                    (changed ??= []).Add(new LogEventProperty(name, new ScalarValue(TokenShape().Replace(text, "[redacted]"))));
                }
            }

            foreach (var property in changed ?? [])
            {
                logEvent.AddOrUpdateProperty(property);
            }
        }

        [GeneratedRegex("[0-9a-fA-F]{32}")]
        private static partial Regex TokenShape();
    }
}
