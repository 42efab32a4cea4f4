using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using LockService.Core.Locks;
using Serilog;
using Serilog.Configuration;
using Serilog.Core;
using Serilog.Events;
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
                logger.WriteTo.Sink(new BatchedConsoleSink(new RequestLineFormatter()), new BatchingOptions
                {
                    BatchSizeLimit = 1000,
                    BufferingTimeLimit = TimeSpan.FromMilliseconds(100),
                    QueueLimit = 100_000,
                });
            }
        },
        preserveStaticLogger: true);    // this host's logger, not the static Log.Logger that the last host built replaces (tests run several)
        CacheLoggersPerCategory(builder.Services);
        return builder;
    }

    /// <summary>
    /// The ASP.NET Core logger factory Serilog provides builds a new Serilog logger on every CreateLogger call, and
    /// ASP.NET Core's result types call it on every response. Loggers are cached per category here instead.
    /// </summary>
    private static void CacheLoggersPerCategory(IServiceCollection services)
    {
        var serilog = services.Last(d => d.ServiceType == typeof(ILoggerFactory));
        services.Remove(serilog);
        services.AddSingleton<ILoggerFactory>(sp => new CachingLoggerFactory(serilog switch
        {
            { ImplementationInstance: ILoggerFactory instance } => instance,
            { ImplementationFactory: { } factory } => (ILoggerFactory)factory(sp),
            _ => (ILoggerFactory)ActivatorUtilities.CreateInstance(sp, serilog.ImplementationType!),
        }));
    }

    /// <remarks>
    /// One category gets no logger at all: while "Microsoft.AspNetCore.Hosting.Diagnostics" is on at any level,
    /// ASP.NET Core starts an Activity and a logging scope for every request, a measurable share of a lock request's
    /// CPU. All it logs is request start and finish at Information, which the request line replaces; that line
    /// carries the RequestId that problem bodies show as traceId. Tracing is unaffected: with an ActivityListener
    /// (OpenTelemetry) attached, hosting starts the Activity anyway, and problem bodies then show its W3C trace id.
    /// </remarks>
    private sealed class CachingLoggerFactory(ILoggerFactory inner) : ILoggerFactory
    {
        private const string HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics";
        private readonly ConcurrentDictionary<string, Microsoft.Extensions.Logging.ILogger> _loggers = new(StringComparer.Ordinal);

        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => categoryName == HostingDiagnostics
            ? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance
            : _loggers.GetOrAdd(categoryName, inner.CreateLogger);

        public void AddProvider(ILoggerProvider provider)
        {
            _loggers.Clear();
            inner.AddProvider(provider);
        }

        public void Dispose() => inner.Dispose();
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

        private static readonly ScalarValue SourceContext = new("LockService.Api.RequestLog");

        private static readonly ScalarValue NoRoute = new("(no route)");
        private static readonly ConcurrentDictionary<string, ScalarValue> Scalars = new(StringComparer.Ordinal);
        private static readonly ScalarValue?[] Statuses = new ScalarValue?[600];

        public static void Write(Serilog.ILogger logger, HttpContext http, string? route, int status, double elapsedMs)
        {
            var level = status >= 500 ? LogEventLevel.Error : LogEventLevel.Information;
            if (!logger.IsEnabled(level))
            {
                return;
            }

            // Elapsed rounded here rather than by a format in the template, which would make the JSON formatter
            // render the message a second time for every event. The properties go straight into the event's own
            // dictionary, sized once, instead of through LogEventProperty objects into a dictionary that grows.
            var properties = new Dictionary<string, LogEventPropertyValue>(7, StringComparer.Ordinal)
            {
                ["RequestMethod"] = Scalar(RequestMetrics.MethodOf(http.Request.Method)),
                ["RouteTemplate"] = route is null ? NoRoute : Scalar(route),
                ["StatusCode"] = StatusOf(status),
                ["Elapsed"] = new ScalarValue(Math.Round(elapsedMs, 3)),
                ["RequestId"] = new ScalarValue(http.TraceIdentifier),
                [Serilog.Core.Constants.SourceContextPropertyName] = SourceContext,
            };
            var activity = System.Diagnostics.Activity.Current;
            logger.Write(LogEvent.UnstableAssembleFromParts(
                DateTimeOffset.Now, level, null, Template, properties, activity?.TraceId ?? default, activity?.SpanId ?? default));
        }

        // Methods (the standard set, else OTHER) and route templates are few; statuses are 100-599.
        private static ScalarValue Scalar(string text) => Scalars.Count < 1000 ? Scalars.GetOrAdd(text, static t => new ScalarValue(t)) : new ScalarValue(text);

        private static ScalarValue StatusOf(int status) =>
            status is >= 100 and < 600 ? Statuses[status] ??= new ScalarValue(status) : new ScalarValue(status);
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
                if (value is ScalarValue { Value: string { Length: >= LockToken.Length } text } && TokenShape().IsMatch(text))
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
