using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Scale;

/// <summary>
/// Client loops acquire and release through the service while the Sentinel fails the master over to its replica;
/// the run ends once the service has acquired on the new master again. Every answer is kept for the assertions.
/// </summary>
internal sealed class FailoverScenario
{
    private static readonly HttpStatusCode[] ContractAnswers =
        [HttpStatusCode.Created, HttpStatusCode.NoContent, HttpStatusCode.Conflict, HttpStatusCode.NotFound, HttpStatusCode.ServiceUnavailable];

    private FailoverScenario(IReadOnlyList<Answer> answers, TimeSpan switched, TimeSpan recovered, IReadOnlyList<string> errorLog)
    {
        Answers = answers;
        Switched = switched;
        Recovered = recovered;
        ErrorLog = errorLog;
    }

    public IReadOnlyList<Answer> Answers { get; }

    /// <summary>The service's log lines about 500s, for the failure message (there should be none).</summary>
    public IReadOnlyList<string> ErrorLog { get; }

    /// <summary>When the Sentinel named the old replica master and it had taken the role, from the start of the run.</summary>
    public TimeSpan Switched { get; }

    /// <summary>From <see cref="Switched"/> to the first acquire that landed on the new master.</summary>
    public TimeSpan Recovered { get; }

    public static async Task<FailoverScenario> RunAsync(SentinelFixture sentinel, IDictionary<string, string?> settings)
    {
        await using var factory = new LockServiceFactory(sentinel.ConnectionString, settings);
        var client = new LockClient(factory.CreateClient());
        var answers = new ConcurrentQueue<Answer>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();

        // Four clients on keys of their own (so each sees its key's fencing tokens in order), two sharing one (so 409s happen).
        var shared = Keys.Unique("failover-shared");
        var loops = Enumerable.Range(0, 6).Select(i => Task.Run(async () =>
        {
            var key = i < 4 ? Keys.Unique($"failover-{i}") : shared;
            while (!stop.IsCancellationRequested)
            {
                var acquired = await TimedAsync(answers, clock, "acquire", key, () => client.AcquireAsync(key, "ttlMs=3000"));
                if (acquired.Status == HttpStatusCode.Created)
                {
                    await TimedAsync(answers, clock, "release", key, () => client.ReleaseAsync(key, acquired.Lease.Token));
                }
            }
        })).ToArray();

        try
        {
            await RedisServer.WaitUntilAsync(() => Task.FromResult(answers.Count(a => a.Status == HttpStatusCode.Created) >= 20), TimeSpan.FromSeconds(10), "20 acquires before the failover");
            Assert.Equal(sentinel.Master.Port, await sentinel.MasterPortAsync());

            await sentinel.Sentinel.SentinelFailoverAsync(SentinelFixture.ServiceName);
            await RedisServer.WaitUntilAsync(async () => await sentinel.MasterPortAsync() == sentinel.Replica.Port, TimeSpan.FromSeconds(15), "the Sentinel to name the replica master");
            await RedisServer.WaitUntilAsync(
                async () => (await sentinel.InfoAsync(sentinel.Replica)).Contains("role:master", StringComparison.Ordinal),
                TimeSpan.FromSeconds(15),
                "the replica to take the master role");
            var switched = clock.Elapsed;

            // A 201 is not enough: the lock must be on the new master, not on the old one that is about to be demoted.
            var newMaster = (await sentinel.DirectAsync(sentinel.Replica)).Multiplexer.GetDatabase();
            var probes = 0;
            await RedisServer.WaitUntilAsync(
                async () =>
                {
                    var key = Keys.Unique($"after-switch-{probes++}");
                    var reply = await TimedAsync(answers, clock, "probe", key, () => client.AcquireAsync(key, "ttlMs=30000"));
                    return reply.Status == HttpStatusCode.Created && await newMaster.KeyExistsAsync(Keys.InRedis(key).Lock);
                },
                TimeSpan.FromSeconds(20),
                "an acquire on the new master");
            var recovered = clock.Elapsed - switched;
            await RedisServer.WaitUntilAsync(
                () => Task.FromResult(answers.Count(a => a.At > switched + recovered && a.Operation == "acquire" && a.Status == HttpStatusCode.Created) >= 4),
                TimeSpan.FromSeconds(10),
                "the client loops to acquire again on the new master");

            await stop.CancelAsync();
            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(10));
            return new FailoverScenario([.. answers.OrderBy(a => a.At)], switched, recovered, [.. factory.Log.Lines.Where(l => l.Contains(" ERR]", StringComparison.Ordinal) && !l.Contains("ERR] HTTP ", StringComparison.Ordinal))]);
        }
        finally
        {
            await stop.CancelAsync();
        }
    }

    /// <summary>What happened, for the test output: timings and the answers by status.</summary>
    public override string ToString()
    {
        var byStatus = string.Join(", ", Answers.GroupBy(a => (int)a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}"));
        var slowest = Answers.MaxBy(a => a.Elapsed)!;
        return $"switched {Switched.TotalMilliseconds:0} ms into the run; acquired on the new master {Recovered.TotalMilliseconds:0} ms later; " +
            $"answers {byStatus}; 503s after the switch {Answers.Count(a => a.At > Switched && a.Status == HttpStatusCode.ServiceUnavailable)}; slowest {slowest.Operation} {(int)slowest.Status} " +
            $"{slowest.Elapsed.TotalMilliseconds:0} ms at {slowest.At.TotalMilliseconds:0} ms";
    }

    /// <summary>Only 201/204/409/404/503 (never a 500), every 503 a redis_unavailable, none slower than the contract allows.</summary>
    public void AssertOnlyContractAnswers()
    {
        var unexpected = Answers.Where(a => !ContractAnswers.Contains(a.Status)).ToList();
        Assert.True(
            unexpected.Count == 0,
            "answers outside the contract: " + string.Join("; ", unexpected.Take(5).Select(a => $"{a.Operation} {(int)a.Status} {a.Body}")) + "; service log: " + string.Join(" | ", ErrorLog.Take(3)));
        Assert.All(Answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable), a => Assert.Equal("redis_unavailable", JsonDocument.Parse(a.Body).RootElement.GetProperty("code").GetString()));
        Assert.Contains(Answers, a => a.At < Switched && a.Status == HttpStatusCode.Created);

        // Redis:TimeoutMs is 1000: a 503 comes within that plus a second, never a hang (slack for a busy machine).
        var slowest = Answers.MaxBy(a => a.Elapsed)!;
        Assert.True(slowest.Elapsed < TimeSpan.FromSeconds(3), $"slowest answer: {slowest.Operation} {(int)slowest.Status} after {slowest.Elapsed.TotalMilliseconds:0} ms");
    }

    /// <summary>Per key, the fencing tokens of the 201s, in the order the answers came, strictly increase.</summary>
    public void AssertFencingTokensStrictlyIncrease()
    {
        foreach (var key in Answers.Where(a => a.Operation == "acquire" && a.Key.StartsWith("failover-", StringComparison.Ordinal) && !a.Key.StartsWith("failover-shared", StringComparison.Ordinal)).Select(a => a.Key).Distinct())
        {
            var granted = Answers.Where(a => a.Key == key && a.Fence is not null).ToList();
            var backwards = granted.Zip(granted.Skip(1)).Where(p => p.Second.Fence <= p.First.Fence).ToList();
            Assert.True(
                backwards.Count == 0,
                $"{key}: fencing token went from {backwards.FirstOrDefault().First?.Fence} to {backwards.FirstOrDefault().Second?.Fence} ({granted.Count} acquisitions); " +
                $"switch at {Switched.TotalMilliseconds:0} ms; " + string.Join(" | ", backwards.Take(1).SelectMany(p => new[] { p.First, p.Second })
                    .Select(a => $"{a.Operation} at {a.At.TotalMilliseconds:0} ms took {a.Elapsed.TotalMilliseconds:0} ms: {a.Body}")) +
                "; around them: " + string.Join(" | ", Answers.Where(a => a.Key == key && backwards.Count > 0 && a.At >= backwards[0].First.At - TimeSpan.FromSeconds(1) && a.At <= backwards[0].Second.At)
                    .Select(a => $"{a.Operation} {(int)a.Status} at {a.At.TotalMilliseconds:0}+{a.Elapsed.TotalMilliseconds:0}")));
        }
    }

    private static async Task<Reply> TimedAsync(ConcurrentQueue<Answer> answers, Stopwatch clock, string operation, string key, Func<Task<Reply>> call)
    {
        var started = clock.Elapsed;
        var reply = await call().WaitAsync(TimeSpan.FromSeconds(10));
        long? fence = operation != "release" && reply.Status == HttpStatusCode.Created ? reply.Lease.FencingToken : null;
        answers.Enqueue(new Answer(operation, key, reply.Status, reply.Body, fence, started, clock.Elapsed - started));
        return reply;
    }

    internal sealed record Answer(string Operation, string Key, HttpStatusCode Status, string Body, long? Fence, TimeSpan At, TimeSpan Elapsed);
}
