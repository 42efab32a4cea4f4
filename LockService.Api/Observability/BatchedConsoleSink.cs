using System.Text;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace LockService.Api.Observability;

/// <summary>
/// Writes log events to stdout in batches, off the request path (Serilog's own batching: a bounded queue and
/// one background writer). One formatted line per event, as the console sink writes it, but one write(2) per
/// batch instead of a locked write and flush per event. Disposed (and so drained) when the host stops.
/// </summary>
internal sealed class BatchedConsoleSink(ITextFormatter formatter) : IBatchedLogEventSink, IDisposable
{
    private readonly StreamWriter _output = new(Console.OpenStandardOutput(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 64 * 1024)
    {
        AutoFlush = false,
    };

    public Task EmitBatchAsync(IReadOnlyCollection<LogEvent> batch)
    {
        foreach (var logEvent in batch)
        {
            formatter.Format(logEvent, _output);
        }

        _output.Flush();
        return Task.CompletedTask;
    }

    public Task OnEmptyBatchAsync() => Task.CompletedTask;

    public void Dispose() => _output.Flush();
}
