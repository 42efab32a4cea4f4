using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Serilog;
using Serilog.Configuration;
using Serilog.Core;
using Serilog.Events;
using Serilog.Extensions.Logging;
using Serilog.Formatting.Compact;
using Serilog.Parsing;

namespace LockService.Api.Observability;

/// <summary>
/// Serilog from configuration: compact JSON on stdout outside Development, readable text in Development,
/// one request line per request with the route template (never the raw path, which holds tokens).
/// </summary>
internal static partial class Logging
{
    public const string TextTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}{NewLine}{Exception}";

    /// <summary>
    /// ASP.NET Core starts an Activity and a logging scope for every request while this category is on at any level,
    /// a measurable share of a lock request's CPU. All it logs is request start and finish at Information, which the
    /// request line replaces; that line carries the RequestId that problem bodies show as traceId. Tracing is
    /// unaffected: with an ActivityListener (OpenTelemetry) attached, hosting starts the Activity anyway, and problem
    /// bodies then show its W3C trace id.
    /// </summary>
    public const string HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics";

    public static WebApplicationBuilder AddLockLogging(this WebApplicationBuilder builder)
    {
        var development = builder.Environment.IsDevelopment();
        // Serilog is the one provider of ASP.NET Core's own logger factory rather than a replacement for it (what
        // AddSerilog and UseSerilog register): that factory keeps one logger per category, where Serilog's builds a
        // new one on every CreateLogger call, which ASP.NET Core's result types make on every response.
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<Serilog.ILogger>(services => CreateLogger(services, builder.Configuration, development));
        builder.Services.AddSingleton<ILoggerProvider>(services => new SerilogLoggerProvider(services.GetRequiredService<Serilog.ILogger>()));
        builder.Logging
            // Serilog's levels decide (its configuration section), as with AddSerilog: the "Logging" section does not apply.
            .AddFilter<SerilogLoggerProvider>(null, LogLevel.Trace)
            .AddFilter<SerilogLoggerProvider>(HostingDiagnostics, LogLevel.None)
            // Serilog records the current trace and span itself; the factory's copies would be extra properties on events.
            .Configure(factory => factory.ActivityTrackingOptions = ActivityTrackingOptions.None);
        return builder;
    }

    /// <summary>The logger, disposed (its batches drained) with the container when the host stops.</summary>
    private static Logger CreateLogger(IServiceProvider services, IConfiguration configuration, bool development)
    {
        // Safe without any appsettings.json (the service started from another directory): the framework's own
        // request logs, which carry raw paths, stay off unless configuration turns them on.
        var logger = new LoggerConfiguration().MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft.AspNetCore.DataProtection", LogEventLevel.Error)
            .MinimumLevel.Override("System", LogEventLevel.Warning);
        logger.ReadFrom.Configuration(configuration)
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
            logger.WriteTo.Sink(new BatchedConsoleSink(new RequestLineFormatter()), new BatchingOptions
            {
                BatchSizeLimit = 1000,
                BufferingTimeLimit = TimeSpan.FromMilliseconds(100),
                QueueLimit = 100_000,
            });
        }

        return logger.CreateLogger();
    }

    /// <summary>
    /// The request line, one per request: method, route template (never the raw path), status, elapsed ms and the
    /// RequestId that problem bodies show as traceId. Serilog's request logging cut to that: the event is built from
    /// a template parsed once and cached property values, with no per-request diagnostic context. Level
    /// Information, Error for a 5xx. Written by <see cref="RequestMiddleware"/>.
    /// </summary>
    internal static class RequestLog
    {
        /// <summary>The request line's template; events with it carry no token, so the redactor lets them pass.</summary>
        internal static readonly MessageTemplate Template =
            new MessageTemplateParser().Parse("HTTP {RequestMethod} {RouteTemplate} responded {StatusCode} in {Elapsed} ms ({RequestId})");

        private const string RequestMethod = "RequestMethod";
        private const string RouteTemplate = "RouteTemplate";
        private static readonly LogEventProperty SourceContext = new(Serilog.Core.Constants.SourceContextPropertyName, new ScalarValue("LockService.Api.RequestLog"));
        private static readonly LogEventProperty NoRoute = new(RouteTemplate, new ScalarValue("(no route)"));
        private static readonly ConcurrentDictionary<(string, string), LogEventProperty> Properties = new();
        private static readonly LogEventProperty?[] Statuses = new LogEventProperty?[600];

        public static void Write(Serilog.ILogger logger, HttpContext http, string? route, int status, double elapsedMs)
        {
            var level = status >= 500 ? LogEventLevel.Error : LogEventLevel.Information;
            if (!logger.IsEnabled(level))
            {
                return;
            }

            // Elapsed rounded here rather than by a format in the template, which would make the JSON formatter
            // render the message a second time for every event. Properties whose values repeat are made once.
            var activity = System.Diagnostics.Activity.Current;
            logger.Write(new LogEvent(DateTimeOffset.Now, level, null, Template,
                [
                    Property(RequestMethod, RequestMetrics.MethodOf(http.Request.Method)),
                    route is null ? NoRoute : Property(RouteTemplate, route),
                    StatusOf(status),
                    new LogEventProperty("Elapsed", new ScalarValue(Math.Round(elapsedMs, 3))),
                    new LogEventProperty("RequestId", new ScalarValue(http.TraceIdentifier)),
                    SourceContext,
                ],
                activity?.TraceId ?? default,
                activity?.SpanId ?? default));
        }

        // Methods (the standard set, else OTHER) and route templates are few; statuses are 100-599.
        private static LogEventProperty Property(string name, string text) => Properties.Count < 1000
            ? Properties.GetOrAdd((name, text), static p => new LogEventProperty(p.Item1, new ScalarValue(p.Item2)))
            : new LogEventProperty(name, new ScalarValue(text));

        private static LogEventProperty StatusOf(int status) => status is >= 100 and < 600
            ? Statuses[status] ??= new LogEventProperty("StatusCode", new ScalarValue(status))
            : new LogEventProperty("StatusCode", new ScalarValue(status));
    }

    /// <summary>
    /// An exception as it may be logged: its whole text (types, messages, stack traces, inner exceptions) with every
    /// token-shaped run redacted, since a message can quote a request path or value. Sinks write exceptions through
    /// ToString(), and an enricher cannot replace an event's exception, so the log call passes this instead.
    /// </summary>
    public static Exception Redacted(Exception exception) => new RedactedException(exception);

    private static string Redact(string text) => TokenShape().Replace(text, "[redacted]");

    [GeneratedRegex("[0-9a-fA-F]{32}")]
    private static partial Regex TokenShape();

    private sealed class RedactedException(Exception original) : Exception(Redact(original.Message))
    {
        private readonly string _text = Redact(original.ToString());

        public override string? StackTrace => null;   // in the text

        public override string ToString() => _text;
    }

    /// <summary>
    /// A last line of defence: any 32-hex-character run in a logged string (the shape of a lock token) is
    /// replaced, so a token that reaches a log property by a path nobody foresaw is still not written out.
    /// </summary>
    private sealed class TokenRedactor : ILogEventEnricher
    {
        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
        {
            if (ReferenceEquals(logEvent.MessageTemplate, RequestLog.Template))
            {
                return;
            }

            // ASP.NET Core's request scope carries the raw path, token included; the route template says enough.
            logEvent.RemovePropertyIfPresent("RequestPath");
            List<LogEventProperty>? changed = null;
            foreach (var (name, value) in logEvent.Properties)
            {
                if (value is ScalarValue { Value: string { Length: >= LeaseToken.Length } text } && TokenShape().IsMatch(text))
                {
                    (changed ??= []).Add(new LogEventProperty(name, new ScalarValue(Redact(text))));
                }
            }

            if (changed is null)
            {
                return;
            }

            foreach (var property in changed)
            {
                logEvent.AddOrUpdateProperty(property);
            }
        }
    }
}
