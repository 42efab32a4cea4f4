using System.Globalization;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Json;

namespace LockService.Api.Observability;

/// <summary>
/// Compact JSON (CLEF), exactly as <see cref="CompactJsonFormatter"/> writes it, with a fast path for the request
/// line: its template has no format specifiers and its values are scalars, so the line is written straight to the
/// output without the general formatter's per-event iterators, renderings and timestamp string. Every other event
/// goes to <see cref="CompactJsonFormatter"/>.
/// </summary>
internal sealed class RequestLineFormatter : ITextFormatter
{
    private static readonly CompactJsonFormatter General = new();
    private static readonly JsonValueFormatter Values = new(typeTagName: "$type");

    public void Format(LogEvent logEvent, TextWriter output)
    {
        if (!ReferenceEquals(logEvent.MessageTemplate, Logging.RequestLog.Template) || logEvent.Exception is not null)
        {
            General.Format(logEvent, output);
            return;
        }

        Span<char> buffer = stackalloc char[40];
        output.Write("{\"@t\":\"");
        logEvent.Timestamp.UtcDateTime.TryFormat(buffer, out var written, "O", CultureInfo.InvariantCulture);
        output.Write(buffer[..written]);
        output.Write("\",\"@mt\":");
        JsonValueFormatter.WriteQuotedJsonString(logEvent.MessageTemplate.Text, output);
        if (logEvent.Level != LogEventLevel.Information)
        {
            output.Write(",\"@l\":\"");
            output.Write(logEvent.Level.ToString());
            output.Write('"');
        }

        if (logEvent.TraceId is { } traceId)
        {
            output.Write(",\"@tr\":\"");
            output.Write(traceId.ToHexString());
            output.Write('"');
        }

        if (logEvent.SpanId is { } spanId)
        {
            output.Write(",\"@sp\":\"");
            output.Write(spanId.ToHexString());
            output.Write('"');
        }

        // The event's properties are a Dictionary behind the interface: its struct enumerator allocates nothing.
        foreach (var (name, value) in logEvent.Properties as Dictionary<string, LogEventPropertyValue> ?? new(logEvent.Properties))
        {
            output.Write(',');
            JsonValueFormatter.WriteQuotedJsonString(name.Length > 0 && name[0] == '@' ? "@" + name : name, output);
            output.Write(':');
            switch (value)
            {
                case ScalarValue { Value: int number }:
                    number.TryFormat(buffer, out written, provider: CultureInfo.InvariantCulture);
                    output.Write(buffer[..written]);
                    break;
                case ScalarValue { Value: string text }:
                    JsonValueFormatter.WriteQuotedJsonString(text, output);
                    break;
                default:
                    Values.Format(value, output);
                    break;
            }
        }

        output.Write('}');
        output.Write('\n');
    }
}
