using System.Globalization;
using System.Net;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace LockService.Tests.Faults;

/// <summary>
/// A Redis that answers but refuses writes (a replica, too few replicas, a failed save, memory full) is a 503
/// redis_unavailable with Retry-After, never a 500, and the same calls succeed once an operator has cleared the cause,
/// without a restart of the service. Each test starts redis-server processes of its own and puts them in that state.
/// </summary>
public sealed class RefusedWriteTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [RedisServerFact]
    public async Task A_demoted_master_that_answers_READONLY_gives_503_and_the_same_calls_succeed_once_it_is_master_again()
    {
        await using var master = await RedisServer.StartNewAsync();
        await using var replica = await RedisServer.StartNewAsync("--replicaof", "127.0.0.1", master.Port.ToString(CultureInfo.InvariantCulture));
        await using var masterAdmin = await AdminAsync(master);
        await using var replicaAdmin = await AdminAsync(replica);

        await RefusedThenHealedAsync(
            master,
            nameof(A_demoted_master_that_answers_READONLY_gives_503_and_the_same_calls_succeed_once_it_is_master_again),
            refuse: async () =>
            {
                // The service's own Redis becomes a replica of one that has its data (the held lock included), as in a
                // failover the service was not told about: reads still work there, writes are refused.
                await RedisServer.WaitUntilAsync(
                    async () => (long)await Node(masterAdmin).ExecuteAsync("WAIT", 1, 1000) == 1, Deadline, "the replica to have the held lock");
                await Node(replicaAdmin).ExecuteAsync("REPLICAOF", "NO", "ONE");
                await Node(masterAdmin).ExecuteAsync("REPLICAOF", "127.0.0.1", replica.Port);
                await WaitForInfoAsync(masterAdmin, "replication", "master_link_status:up");
            },
            heal: async () => await Node(masterAdmin).ExecuteAsync("REPLICAOF", "NO", "ONE"));
    }

    [RedisServerFact]
    public async Task Too_few_replicas_for_min_replicas_to_write_gives_503_and_the_same_calls_succeed_once_the_setting_is_met()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using var admin = await AdminAsync(redis);

        await RefusedThenHealedAsync(
            redis,
            nameof(Too_few_replicas_for_min_replicas_to_write_gives_503_and_the_same_calls_succeed_once_the_setting_is_met),
            refuse: () => ConfigSetAsync(admin, "min-replicas-to-write", "1"),
            heal: () => ConfigSetAsync(admin, "min-replicas-to-write", "0"));
    }

    [RedisServerFact]
    public async Task A_failed_background_save_with_stop_writes_on_bgsave_error_gives_503_and_the_same_calls_succeed_once_cleared()
    {
        // Redis refuses writes after a failed save only while it has save rules; the save fails because the directory
        // it writes into is gone (removed under it, which fails for root too, unlike a directory without write rights).
        var saveDir = Directory.CreateTempSubdirectory("lockservice-misconf-").FullName;
        await using var redis = await RedisServer.StartNewAsync("--dir", saveDir, "--save", "3600 1", "--stop-writes-on-bgsave-error", "yes");
        await using var admin = await AdminAsync(redis);

        await RefusedThenHealedAsync(
            redis,
            nameof(A_failed_background_save_with_stop_writes_on_bgsave_error_gives_503_and_the_same_calls_succeed_once_cleared),
            refuse: async () =>
            {
                Directory.Delete(saveDir, recursive: true);
                await Node(admin).ExecuteAsync("BGSAVE");
                await WaitForInfoAsync(admin, "persistence", "rdb_last_bgsave_status:err");
            },
            heal: () => ConfigSetAsync(admin, "stop-writes-on-bgsave-error", "no"));
    }

    [RedisServerFact]
    public async Task A_full_redis_under_noeviction_gives_503_for_acquires_lets_holders_extend_and_release_and_the_same_calls_succeed_once_memory_is_freed()
    {
        await using var redis = await RedisServer.StartNewAsync("--maxmemory-policy", "noeviction");
        await using var admin = await AdminAsync(redis);
        var filler = Keys.Unique("filler");
        var written = 0;

        await RefusedThenHealedAsync(
            redis,
            nameof(A_full_redis_under_noeviction_gives_503_for_acquires_lets_holders_extend_and_release_and_the_same_calls_succeed_once_memory_is_freed),
            refuse: async () =>
            {
                // A limit a little above what Redis holds, then values until Redis says it is full; then the limit a
                // little below what it holds, so that no allocator noise frees room for one more write meanwhile.
                await ConfigSetAsync(admin, "maxmemory", (await UsedMemoryAsync(admin) + (2 << 20)).ToString(CultureInfo.InvariantCulture));
                var value = new string('x', 64 << 10);
                while (true)
                {
                    Assert.True(written < 1000, "Redis took 64 MB of values under a limit 2 MB above its use");
                    try
                    {
                        await admin.GetDatabase().StringSetAsync($"{filler}:{written}", value);
                        written++;
                    }
                    catch (RedisServerException ex) when (ex.Message.StartsWith("OOM", StringComparison.Ordinal))
                    {
                        break;
                    }
                }

                await ConfigSetAsync(admin, "maxmemory", (await UsedMemoryAsync(admin) - (256 << 10)).ToString(CultureInfo.InvariantCulture));
            },
            heal: async () =>
            {
                for (var i = 0; i < written; i++)
                {
                    await admin.GetDatabase().KeyDeleteAsync($"{filler}:{i}");
                }
            },
            holdersRefused: false);
    }

    /// <summary>
    /// The calls a user makes while Redis refuses writes, then again once it accepts them: a lock acquire, the extend
    /// and release of a lock taken before, a permit acquire. While refused, each is a 503 redis_unavailable with Retry-After 1 and
    /// takes nothing; after <paramref name="heal"/>, the very same calls succeed within seconds.
    /// </summary>
    /// <param name="holdersRefused">
    /// False where Redis still lets a holder's extend and release through: with memory full it refuses only commands
    /// that can add to memory, and these only set a TTL and delete.
    /// </param>
    private async Task RefusedThenHealedAsync(RedisServer redis, string name, Func<Task> refuse, Func<Task> heal, bool holdersRefused = true)
    {
        await using var factory = new LockServiceFactory(redis.ConnectionString);
        var client = new LockClient(factory.CreateClient());
        var key = Keys.Unique(name);
        var held = await client.AcquireOkAsync(key + "-held", "ttlMs=120000");

        // A semaphore that already has a permit out: the next permit's first write adds to it. (The first permit of a
        // semaphore starts by deleting leftovers, and Redis lets a script that has deleted something go on writing
        // even when full, so that one could pass with memory full.)
        await client.AcquirePermitOkAsync(key + "-sem", "limit=2&ttlMs=120000");

        await refuse();

        var acquire = await client.AcquireAsync(key);
        AssertRefused(acquire, "lock acquire");
        var extend = await client.ExtendAsync(key + "-held", held.Token);
        var release = await client.ReleaseAsync(key + "-held", held.Token);
        if (holdersRefused)
        {
            AssertRefused(extend, "lock extend");
            AssertRefused(release, "lock release");
        }
        else
        {
            Assert.True(extend.Status == HttpStatusCode.OK, $"lock extend: {(int)extend.Status} {extend.Body}");
            Assert.True(release.Status == HttpStatusCode.NoContent, $"lock release: {(int)release.Status} {release.Body}");
        }

        AssertRefused(await client.AcquirePermitAsync(key + "-sem", "limit=2"), "second permit acquire");
        Assert.DoesNotContain(factory.Log.Lines, l => l.Contains("UnexpectedError", StringComparison.Ordinal));

        await heal();

        // The refused acquire took nothing: the same key is free for the same call.
        await RedisServer.WaitUntilAsync(
            async () => (await client.AcquireAsync(key)).Status == HttpStatusCode.Created, Deadline, "the same acquire to succeed after the cause was cleared");
        if (holdersRefused)
        {
            var released = await client.ReleaseAsync(key + "-held", held.Token);
            Assert.True(released.Status == HttpStatusCode.NoContent, $"release after the cause was cleared: {(int)released.Status} {released.Body}");
        }

        var permit = await client.AcquirePermitAsync(key + "-sem", "limit=2");
        Assert.True(permit.Status == HttpStatusCode.Created, $"permit acquire after the cause was cleared: {(int)permit.Status} {permit.Body}");
        await RedisServer.WaitUntilAsync(
            async () => (await client.SendAsync(HttpMethod.Get, "/health/ready")).Status == HttpStatusCode.OK, Deadline, "the instance to be ready after the cause was cleared");
    }

    private void AssertRefused(Reply reply, string call)
    {
        output.WriteLine($"{call}: {(int)reply.Status} {reply.Body}");
        reply.AssertProblem(HttpStatusCode.ServiceUnavailable, "redis_unavailable");
        Assert.Equal(TimeSpan.FromSeconds(1), reply.Headers.RetryAfter?.Delta);
    }

    // Commands go to the one server by its endpoint: routed through a database, one to a node that has become a replica
    // (REPLICAOF NO ONE, to heal it) would find no master to go to.
    private static IServer Node(ConnectionMultiplexer admin) => admin.GetServer(admin.GetEndPoints()[0]);

    private static async Task<ConnectionMultiplexer> AdminAsync(RedisServer redis)
    {
        var options = ConfigurationOptions.Parse(redis.ConnectionString);
        options.AllowAdmin = true;
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    private static Task ConfigSetAsync(ConnectionMultiplexer admin, string name, string value) => Node(admin).ExecuteAsync("CONFIG", "SET", name, value);

    private static async Task<long> UsedMemoryAsync(ConnectionMultiplexer admin)
    {
        var line = (await InfoAsync(admin, "memory")).Split('\n').Single(l => l.StartsWith("used_memory:", StringComparison.Ordinal));
        return long.Parse(line["used_memory:".Length..].Trim(), CultureInfo.InvariantCulture);
    }

    private static async Task<string> InfoAsync(ConnectionMultiplexer admin, string section) => (string)(await Node(admin).ExecuteAsync("INFO", section))!;

    private static Task WaitForInfoAsync(ConnectionMultiplexer admin, string section, string line) =>
        RedisServer.WaitUntilAsync(async () => (await InfoAsync(admin, section)).Contains(line, StringComparison.Ordinal), Deadline, $"INFO {section} to say {line}");
}
