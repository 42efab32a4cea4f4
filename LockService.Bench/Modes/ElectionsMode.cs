using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LockService.Bench.Http;
using LockService.Bench.Service;
using LockService.Bench.Stats;

namespace LockService.Bench.Modes;

/// <summary>
/// Elections, in three parts. (1) Change to observer: --observers observe streams of one name, split over --url and
/// --url2, and N rounds of a proclaim (a new value) sent alternately through each instance; the figure is from the
/// proclaim's send to each observer reading the event with that value. (2) Leadership hand-over: N rounds of a leader
/// holding the election by a stream on --url, a candidate waiting on --url2, the stream's client closing; the figure is
/// from the close to the candidate's 201. (3) Many observers: -c observe streams of one name on --url, held -d seconds
/// idle; the service's RSS before and after, and its CPU while idle (from /proc/PID/stat, with --pid).
/// </summary>
internal static class ElectionsMode
{
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");

    public static async Task<Report> RunAsync(BenchContext context)
    {
        var options = context.Options;
        var url2 = context.Service2?.Urls.BaseUrl ?? context.Service.Urls.BaseUrl;
        int many = options.Concurrency;
        OpenFileLimit.Check(options.Pid, $"{many} observe streams", many + 256, many + 256);
        using var streams = new LockClient(many + 256, options.ApiKey, closeUnfinished: true);
        var report = new Report(context);

        var (latency, perInstance, missed) = await ChangeToObserverAsync(context, streams.Http, url2);
        report.LatencyHeader();
        report.Latency("proclaim -> observer", "observe", latency);
        report.Latency("  observer on --url", "observeOne", perInstance[0]);
        report.Latency("  observer on --url2", "observeTwo", perInstance[1]);
        report.Line("missed", $"{new Figure("observeMissed", missed)} (an observer that never read a round's value: skipped as superseded, or lost)");

        var handover = await HandoverAsync(context, streams.Http, url2);
        report.Latency("stream close -> 201", "handover", handover);

        var (opened, rssBefore, rssOpen, cpuIdle, heartbeats) = await ManyObserversAsync(context, streams.Http, many);
        report.Line("observers", $"{new Figure("observers", opened)} of {many} open on one name on --url");
        report.Line("service RSS", $"before {new Figure("rssBeforeMb", rssBefore, "0.0")} MB, with them open {new Figure("rssObserversMb", rssOpen, "0.0")} MB", show: rssBefore is not null);
        report.Line("service CPU idle", $"{new Figure("cpuIdlePercent", cpuIdle, "0.00")} % of one core over {new Figure("idleSec", options.Duration.TotalSeconds, "0")} s, observers open and nothing changing", show: cpuIdle is not null);
        report.Line("heartbeats", $"{new Figure("heartbeats", heartbeats)} comments read by the observers while idle");
        return report;
    }

    // Part 1: observers on both instances, a leader proclaiming a new value each round through either instance.
    private static async Task<(SampleSet All, SampleSet[] PerInstance, long Missed)> ChangeToObserverAsync(BenchContext context, HttpClient http, Uri url2)
    {
        var options = context.Options;
        var name = context.RunPrefix + "observe";
        var urls = new[] { context.Service.Urls.BaseUrl, url2 };
        var leader = await SendAsync(http, HttpMethod.Post, new Uri(urls[0], $"/elections/{name}?ttlMs=60000&value=start"), options.Timeout);
        var token = JsonDocument.Parse(leader.Body).RootElement.GetProperty("token").GetString();
        var observers = new List<Observer>();
        for (int i = 0; i < options.Keys; i++)
        {
            observers.Add(await Observer.OpenAsync(http, new Uri(urls[i % 2], $"/elections/{name}"), i % 2, options.Timeout));
        }

        await WaitAsync(() => observers.All(o => o.LastValue == "start"), options.SettleTimeout, "every observer's first event");
        var all = new SampleSet();
        var perInstance = new[] { new SampleSet(), new SampleSet() };
        long missed = 0;
        int rounds = options.Rounds;
        context.Progress($"elections: {observers.Count} observers on two instances, {rounds} proclaims");
        for (int round = 0; round < rounds; round++)
        {
            var value = "v" + round.ToString(CultureInfo.InvariantCulture);
            long sent = Stopwatch.GetTimestamp();
            await SendAsync(http, HttpMethod.Patch, new Uri(urls[round % 2], $"/elections/{name}/{token}?value={value}"), options.Timeout);
            await WaitAsync(() => observers.All(o => o.LastValue == value), options.Timeout, $"every observer to read {value}");
            foreach (var observer in observers)
            {
                if (observer.SeenAt(value) is long at)
                {
                    double ms = Stopwatch.GetElapsedTime(sent, at).TotalMilliseconds;
                    all.Add(ms);
                    perInstance[observer.Instance].Add(ms);
                }
                else
                {
                    missed++;
                }
            }

            // Rounds a little apart, so that each is one change and not a burst.
            await Task.Delay(5);
        }

        foreach (var observer in observers)
        {
            observer.Dispose();
        }

        await SendAsync(http, HttpMethod.Delete, new Uri(urls[0], $"/elections/{name}/{token}"), options.Timeout);
        return (all, perInstance, missed);
    }

    // Part 2: a stream-held leader on --url closes; a candidate waiting on --url2 leads.
    private static async Task<SampleSet> HandoverAsync(BenchContext context, HttpClient http, Uri url2)
    {
        var options = context.Options;
        var samples = new SampleSet();
        context.Progress($"elections: {options.Rounds} hand-overs from a closed stream on --url to a candidate waiting on --url2");
        for (int round = 0; round < options.Rounds; round++)
        {
            var name = context.RunPrefix + "handover-" + round.ToString(CultureInfo.InvariantCulture);
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(context.Service.Urls.BaseUrl, $"/elections/{name}?ttlMs={options.TtlMs}"));
            request.Headers.Accept.Add(EventStream);
            var stream = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (await reader.ReadLineAsync() is { } line && line.Length > 0)
            {
                // Up to the end of 'event: acquired'.
            }

            var waiting = SendAsync(http, HttpMethod.Post, new Uri(url2, $"/elections/{name}?waitMs={options.WaitMs}"), options.Timeout + TimeSpan.FromMilliseconds(options.WaitMs));
            await Task.Delay(options.GraceMs);
            long closed = Stopwatch.GetTimestamp();
            reader.Dispose();
            stream.Dispose();
            var next = await waiting;
            if (next.Status == HttpStatusCode.Created)
            {
                samples.Add(Stopwatch.GetElapsedTime(closed, next.At).TotalMilliseconds);
                var token = JsonDocument.Parse(next.Body).RootElement.GetProperty("token").GetString();
                await SendAsync(http, HttpMethod.Delete, new Uri(url2, $"/elections/{name}/{token}"), options.Timeout);
            }
        }

        return samples;
    }

    // Part 3: many observers of one name on one instance, idle.
    private static async Task<(int Opened, double? RssBefore, double? RssOpen, double? CpuIdle, long Heartbeats)> ManyObserversAsync(BenchContext context, HttpClient http, int count)
    {
        var options = context.Options;
        var name = context.RunPrefix + "many";
        double? rssBefore = options.Pid is int pid ? RssSampler.ReadMb(pid) : null;
        context.Progress($"elections: opening {count} observers of one name on --url");
        var observers = new Observer?[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, _) =>
        {
            try
            {
                observers[i] = await Observer.OpenAsync(http, new Uri(context.Service.Urls.BaseUrl, $"/elections/{name}"), 0, options.SettleTimeout);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
            {
                // Counted as not opened.
            }
        });
        var open = observers.Where(o => o is not null && o.Status == HttpStatusCode.OK).Select(o => o!).ToList();
        await WaitAsync(() => open.All(o => o.Events > 0), options.SettleTimeout, "every observer's first event");
        double? rssOpen = options.Pid is int pid2 ? RssSampler.ReadMb(pid2) : null;

        // Idle: nothing changes; the service sends heartbeats and re-reads the name at each.
        context.Progress($"elections: {open.Count} observers open; idle for {options.Duration.TotalSeconds} s");
        var cpuBefore = options.Pid is int pid3 ? CpuTicks(pid3) : null;
        long heartbeatsBefore = open.Sum(o => o.Comments);
        var idle = Stopwatch.StartNew();
        await Task.Delay(options.Duration);
        var cpuAfter = options.Pid is int pid4 ? CpuTicks(pid4) : null;
        double? cpuIdle = cpuBefore is long b && cpuAfter is long a ? (a - b) / 100.0 / idle.Elapsed.TotalSeconds * 100 : null;
        long heartbeats = open.Sum(o => o.Comments) - heartbeatsBefore;
        foreach (var observer in observers)
        {
            observer?.Dispose();
        }

        return (open.Count, rssBefore, rssOpen, cpuIdle, heartbeats);
    }

    // utime + stime of the process, in clock ticks (USER_HZ, 100 on Linux).
    private static long? CpuTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static async Task<(HttpStatusCode Status, string Body, long At)> SendAsync(HttpClient http, HttpMethod method, Uri uri, TimeSpan timeout)
    {
        using var request = new HttpRequestMessage(method, uri);
        using var response = await http.SendAsync(request).WaitAsync(timeout);
        var body = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, body, Stopwatch.GetTimestamp());
    }

    private static async Task WaitAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > timeout)
            {
                throw new SetupException($"elections: no {what} within {timeout.TotalSeconds:0.#} s");
            }

            await Task.Delay(1);
        }
    }

    /// <summary>One observe stream, read on its own task: the value of each event with when it was read.</summary>
    private sealed class Observer : IDisposable
    {
        private readonly HttpResponseMessage _response;
        private readonly Dictionary<string, long> _seen = [];
        private readonly Lock _gate = new();
        private volatile string? _lastValue;
        private long _events;
        private long _comments;

        private Observer(HttpResponseMessage response, int instance)
        {
            _response = response;
            Instance = instance;
            if (response.StatusCode == HttpStatusCode.OK)
            {
                _ = Task.Run(ReadAsync);
            }
        }

        public int Instance { get; }

        public HttpStatusCode Status => _response.StatusCode;

        public string? LastValue => _lastValue;

        public long Events => Interlocked.Read(ref _events);

        public long Comments => Interlocked.Read(ref _comments);

        public static async Task<Observer> OpenAsync(HttpClient http, Uri uri, int instance, TimeSpan timeout)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.Accept.Add(EventStream);
            return new Observer(await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(timeout), instance);
        }

        public long? SeenAt(string value)
        {
            lock (_gate)
            {
                return _seen.TryGetValue(value, out var at) ? at : null;
            }
        }

        public void Dispose() => _response.Dispose();

        private async Task ReadAsync()
        {
            try
            {
                using var reader = new StreamReader(await _response.Content.ReadAsStreamAsync(), Encoding.UTF8);
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (line.StartsWith(':'))
                    {
                        Interlocked.Increment(ref _comments);
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        long at = Stopwatch.GetTimestamp();
                        using var data = JsonDocument.Parse(line.AsMemory(6));
                        var value = data.RootElement.TryGetProperty("value", out var v) ? v.GetString() : null;
                        if (value is not null)
                        {
                            lock (_gate)
                            {
                                _seen.TryAdd(value, at);
                            }
                        }

                        _lastValue = value;
                        Interlocked.Increment(ref _events);
                    }
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException)
            {
                // Closed by the run.
            }
        }
    }
}
