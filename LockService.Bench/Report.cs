using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using LockService.Bench.Stats;

namespace LockService.Bench;

/// <summary>The result of one run: table lines for people, and the same figures as one JSON line for scripts.</summary>
internal sealed class Report
{
    private const int LabelWidth = 26;
    private readonly List<KeyValuePair<string, object?>> _fields = [];
    private readonly List<string> _lines = [];

    public Report(BenchContext context)
    {
        var options = context.Options;
        Add("mode", options.ModeName);
        Add("url", options.Url.ToString());
        Add("url2", options.Url2?.ToString());
        Line("mode", options.ModeName);
        Line("url", options.Url2 is null ? options.Url.ToString() : $"{options.Url} (waiter: {options.Url2})");
    }

    /// <summary>A JSON member: string, integer, double (3 decimals; NaN as null), bool, null or a name-to-count map.</summary>
    public void Add(string name, object? value) => _fields.Add(new(name, value));

    public void Line(string label, string value) => _lines.Add($"{label,-LabelWidth}{value}");

    public void Note(string text) => _lines.Add(text);

    public void LatencyHeader() =>
        _lines.Add($"{"",-LabelWidth}{"count",8}{"p50",11}{"p90",11}{"p99",11}{"max",11}{"mean",11}  (ms)");

    /// <summary>A table row, and jsonPrefix + Count, P50Ms, P90Ms, P99Ms, MaxMs, MeanMs members.</summary>
    public void Latency(string label, string jsonPrefix, ILatencySummary summary)
    {
        double p50 = summary.PercentileMs(50), p90 = summary.PercentileMs(90), p99 = summary.PercentileMs(99);
        _lines.Add($"{label,-LabelWidth}{summary.Count,8}{Ms(p50),11}{Ms(p90),11}{Ms(p99),11}{Ms(summary.MaxMs),11}{Ms(summary.MeanMs),11}");
        Add(jsonPrefix + "Count", summary.Count);
        Add(jsonPrefix + "P50Ms", p50);
        Add(jsonPrefix + "P90Ms", p90);
        Add(jsonPrefix + "P99Ms", p99);
        Add(jsonPrefix + "MaxMs", summary.MaxMs);
        Add(jsonPrefix + "MeanMs", summary.MeanMs);
    }

    public static string Ms(double ms) => double.IsNaN(ms) ? "-" : ms.ToString("0.000", CultureInfo.InvariantCulture);

    public static string Number(double value, string format = "0.0") =>
        double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);

    public void Write(TextWriter output, bool jsonOnly)
    {
        if (!jsonOnly)
        {
            foreach (string line in _lines)
            {
                output.WriteLine(line);
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
            foreach (var (name, value) in _fields)
            {
                writer.WritePropertyName(name);
                WriteValue(writer, value);
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
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
}
