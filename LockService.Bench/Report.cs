using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using LockService.Bench.Stats;

namespace LockService.Bench;

/// <summary>
/// One figure of a report, declared once: its JSON member name, its value (string, integer, double, bool, null,
/// status counts or a name-to-count map), how the table prints it (a number format, or a text of its own).
/// </summary>
internal readonly record struct Figure(string Name, object? Value, string? Format = null, string? Text = null)
{
    /// <summary>Milliseconds in the table.</summary>
    public const string Ms = "0.000";

    /// <summary>The table's form of the value; JSON gets the value itself (doubles to 3 decimals, NaN as null).</summary>
    public override string ToString() => Text ?? Value switch
    {
        null => "-",
        double d when double.IsNaN(d) => "-",
        IFormattable number => number.ToString(Format, CultureInfo.InvariantCulture),
        IReadOnlyDictionary<string, long> counts => string.Join(", ", counts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")),
        _ => Value.ToString() ?? "",
    };
}

/// <summary>
/// The result of one run: a table for people and one JSON line for scripts, both rendered from the same
/// figures. A figure appears in the table where a row interpolates it, and in the JSON line under its name.
/// </summary>
internal sealed class Report
{
    private const int MinLabelWidth = 26;
    private readonly List<Figure> _figures = [];
    private readonly HashSet<string> _names = [];
    private readonly List<(string? Label, string Text)> _rows = [];

    public Report(BenchContext context)
    {
        var options = context.Options;
        Line("mode", $"{new Figure("mode", options.ModeName)}");
        Line("url", $"{new Figure("url", options.Url.ToString())}");
        Line("url2 (waiter)", $"{new Figure("url2", options.Url2?.ToString())}", show: options.Url2 is not null);
    }

    /// <summary>A table row (left out when <paramref name="show"/> is false); the figures it interpolates go to the JSON line either way.</summary>
    public void Line(string label, [InterpolatedStringHandlerArgument("")] Row text, bool show = true)
    {
        string line = text.ToStringAndClear();
        if (show)
        {
            _rows.Add((label, line));
        }
    }

    /// <summary>A line of the table without a label.</summary>
    public void Note([InterpolatedStringHandlerArgument("")] Row text) => _rows.Add((null, text.ToStringAndClear()));

    /// <summary>A figure that the table does not show.</summary>
    public void JsonOnly(string name, object? value) => Declare(new Figure(name, value));

    public void LatencyHeader() => Line("", $"{"count",8}{"p50",11}{"p90",11}{"p99",11}{"max",11}{"mean",11}  (ms)");

    /// <summary>A table row, and jsonPrefix + Count, P50Ms, P90Ms, P99Ms, MaxMs, MeanMs members.</summary>
    public void Latency(string label, string jsonPrefix, ILatencySummary summary)
    {
        Line(label, $"{new Figure(jsonPrefix + "Count", summary.Count),8}{Ms("P50Ms", summary.PercentileMs(50)),11}{Ms("P90Ms", summary.PercentileMs(90)),11}{Ms("P99Ms", summary.PercentileMs(99)),11}{Ms("MaxMs", summary.MaxMs),11}{Ms("MeanMs", summary.MeanMs),11}");

        Figure Ms(string suffix, double ms) => new(jsonPrefix + suffix, ms, Figure.Ms);
    }

    public void Write(TextWriter output, bool jsonOnly)
    {
        if (!jsonOnly)
        {
            int width = Math.Max(MinLabelWidth, _rows.Max(row => row.Label?.Length + 1 ?? 0));
            foreach (var (label, text) in _rows)
            {
                output.WriteLine(label is null ? text : label.PadRight(width) + text);
            }
        }

        output.WriteLine(ToJson());
        output.Flush();
    }

    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            foreach (var figure in _figures)
            {
                writer.WritePropertyName(figure.Name);
                WriteValue(writer, figure.Value);
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private void Declare(Figure figure)
    {
        if (!_names.Add(figure.Name))
        {
            throw new InvalidOperationException($"the report declares {figure.Name} twice");
        }

        _figures.Add(figure);
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case int i:
                writer.WriteNumberValue(i);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case double d when double.IsFinite(d):
                writer.WriteNumberValue(Math.Round(d, 3));
                break;
            case double:
                writer.WriteNullValue();
                break;
            case StatusCounts counts:
                WriteValue(writer, counts.ByName());
                break;
            case IReadOnlyDictionary<string, long> counts:
                writer.WriteStartObject();
                foreach (var (name, count) in counts)
                {
                    writer.WriteNumber(name, count);
                }

                writer.WriteEndObject();
                break;
            default:
                throw new InvalidOperationException($"no JSON form for {value.GetType()}");
        }
    }

    /// <summary>The text of a row: literals and plain values print as they are; each <see cref="Figure"/> also joins the JSON line.</summary>
    [InterpolatedStringHandler]
    public ref struct Row
    {
        private readonly Report _report;
        private DefaultInterpolatedStringHandler _text;

        public Row(int literalLength, int formattedCount, Report report)
        {
            _report = report;
            _text = new DefaultInterpolatedStringHandler(literalLength, formattedCount, CultureInfo.InvariantCulture);
        }

        public void AppendLiteral(string value) => _text.AppendLiteral(value);

        public void AppendFormatted(Figure figure) => AppendFormatted(figure, 0);

        public void AppendFormatted(Figure figure, int alignment)
        {
            _report.Declare(figure);
            _text.AppendFormatted(figure.ToString(), alignment);
        }

        public void AppendFormatted<T>(T value) => _text.AppendFormatted(value);

        public void AppendFormatted<T>(T value, int alignment) => _text.AppendFormatted(value, alignment);

        public string ToStringAndClear() => _text.ToStringAndClear();
    }
}
