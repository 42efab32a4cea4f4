using LockService.Bench;
using LockService.Bench.Modes;

// Exit codes: 0 the run completed (errors are counted in its report), 2 it could not start
// (a command line that does not parse included).
return await new BenchCommandLine(RunAsync).InvokeAsync(args, Console.Error);

static async Task<int> RunAsync(BenchOptions options)
{
    try
    {
        // Every concurrent request needs a connection of its own (HTTP/1.1); the waiters and streams modes bring their own client.
        int maxConnections = Math.Max(1024, options.Mode switch { BenchMode.Waiters => options.Keys, BenchMode.Streams or BenchMode.Elections => 1, _ => options.Concurrency } + 64);
        using var context = await BenchContext.CreateAsync(options, maxConnections);
        var report = options.Mode switch
        {
            BenchMode.Cycles => await CyclesMode.RunAsync(context),
            BenchMode.Contended or BenchMode.Semaphores => await ContendedMode.RunAsync(context),
            BenchMode.Handoff => await HandoffMode.RunAsync(context),
            BenchMode.WatchLoss => await WatchLossMode.RunAsync(context),
            BenchMode.StreamHandoff => await StreamHandoffMode.RunAsync(context),
            BenchMode.Streams => await StreamsMode.RunAsync(context),
            BenchMode.Elections => await ElectionsMode.RunAsync(context),
            _ => await WaitersMode.RunAsync(context),
        };
        report.Write(Console.Out, options.JsonOnly);
        return 0;
    }
    catch (SetupException e)
    {
        await Console.Error.WriteLineAsync($"lockservice-bench: {e.Message}");
        return 2;
    }
}
