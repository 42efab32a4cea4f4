using System.Globalization;
using LockService.Client;
using LockService.Tests.Infrastructure;
using LockClient = LockService.Client.LockClient;
using LockCtl = LockService.Tests.Clients.LockCtlProcess;

namespace LockService.Tests.Clients;

/// <summary>
/// Read/write locks through the .NET client and through lockctl as a real process, against the service on a real
/// Kestrel port: modes exclude each other as the contract says, COMMAND learns its mode, and a held lease is renewed,
/// watched and released as a lock is.
/// </summary>
public sealed class RwLockClientTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private readonly string _dir = Directory.CreateTempSubdirectory("lockctl-rw-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Run_write_is_kept_out_while_a_read_run_holds_the_key_then_runs_alone_with_LOCK_MODE_and_a_greater_fencing_token()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(Run_write_is_kept_out_while_a_read_run_holds_the_key_then_runs_alone_with_LOCK_MODE_and_a_greater_fencing_token));
        var client = LockClient.Create(service.BaseAddress);
        string[] Holder(string name, string mode, params string[] options) =>
            ["run", key, mode, .. options, "--", "sh", "-c",
                $"echo \"$LOCK_MODE $LOCK_FENCING_TOKEN $LOCK_KEY\" > {_dir}/{name}; while [ ! -e {_dir}/stop-{name} ]; do sleep 0.02; done"];

        using var reader = LockCtl.Start(service.BaseAddress, Holder("reader", "--read"));
        await Eventually(() => Written("reader"), "the reader's command to start");

        // Another reader shares the key; a writer that does not wait is refused without running.
        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--read", "--", "sh", "-c", $"echo $LOCK_MODE > {_dir}/second-reader"])).ExitCode);
        Assert.Equal("read", File.ReadAllText(Path.Combine(_dir, "second-reader")).Trim());
        var refused = await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--write", "--", "touch", $"{_dir}/refused-writer"]);
        Assert.Equal(75, refused.ExitCode);
        Assert.Contains("write", refused.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "refused-writer")));

        // A waiting writer: it does not run while the reader holds the key, and readers after it are kept out too.
        using var writer = LockCtl.Start(service.BaseAddress, Holder("writer", "--write", "--wait", "forever"));
        await RedisServer.WaitUntilAsync(async () => (await client.InspectRwLockAsync(key))?.WritersWaiting == 1, Bound, "the writer to wait");
        Assert.False(File.Exists(Path.Combine(_dir, "writer")));
        Assert.Equal(75, (await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--read", "--", "touch", $"{_dir}/late-reader"])).ExitCode);
        Assert.False(File.Exists(Path.Combine(_dir, "late-reader")));

        await File.WriteAllTextAsync(Path.Combine(_dir, "stop-reader"), "");
        Assert.Equal(0, await reader.ExitAsync());
        await Eventually(() => Written("writer"), "the writer's command to start once the reader is gone");
        var inspected = await client.InspectRwLockAsync(key);
        Assert.Equal(RwLockMode.Write, inspected!.Mode);
        Assert.Equal(RwLockMode.Write, Assert.Single(inspected.Holders).Mode);

        await File.WriteAllTextAsync(Path.Combine(_dir, "stop-writer"), "");
        Assert.Equal(0, await writer.ExitAsync());
        Assert.Null(await client.InspectRwLockAsync(key));

        var (readerMode, readerFence) = Seen("reader");
        var (writerMode, writerFence) = Seen("writer");
        Assert.Equal(("read", "write"), (readerMode, writerMode));
        Assert.True(writerFence > readerFence, $"the writer's fencing token {writerFence} is not above the reader's {readerFence}");
    }

    [Theory]
    [InlineData(64, new[] { "run", "k", "--read", "--write", "--", "true" })]
    [InlineData(64, new[] { "run", "k", "--limit", "2", "--write", "--", "true" })]
    [InlineData(64, new[] { "elect", "k" })]
    [InlineData(64, new[] { "observe" })]
    public async Task Kinds_that_exclude_each_other_and_missing_arguments_are_64_with_one_line(int exitCode, string[] args)
    {
        var run = await LockCtl.RunAsync(new Uri("http://127.0.0.1:9/"), args);
        Assert.Equal(exitCode, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.StartsWith("lockctl: ", run.Error, StringComparison.Ordinal);
        Assert.Single(run.Error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task A_held_read_lease_is_renewed_past_its_ttl_shares_with_readers_and_its_LostToken_fires_with_forced_when_an_operator_releases_it()
    {
        await using var service = new LockServiceFactory(
            fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Operators:AllowForceReleaseWithoutAuth"] = "true" }, kestrel: true);
        var key = Keys.Unique(nameof(A_held_read_lease_is_renewed_past_its_ttl_shares_with_readers_and_its_LostToken_fires_with_forced_when_an_operator_releases_it));
        var client = LockClient.Create(service.BaseAddress);

        await using var first = await client.AcquireRwLockAsync(key, RwLockMode.Read, TimeSpan.FromSeconds(1), owner: "first");
        await using var second = await client.AcquireRwLockAsync(key, RwLockMode.Read, TimeSpan.FromSeconds(30));
        Assert.Equal((RwLockMode.Read, RwLockMode.Read), (first.Mode, second.Mode));
        var held = await Assert.ThrowsAsync<RwLockHeldException>(() => client.AcquireRwLockAsync(key, RwLockMode.Write, wait: TimeSpan.FromMilliseconds(50)));
        Assert.Equal(RwLockMode.Write, held.Mode);

        // Past its 1 s TTL the first lease is still held: the handle renewed it.
        await RedisServer.WaitUntilAsync(() => Task.FromResult(first.Lease.ExpiresAt > first.Lease.AcquiredAt.AddSeconds(1.5)), Bound, "a renewal of the read lease");
        var status = await client.CheckRwLockAsync(key, first.Token);
        Assert.True(status.Held);
        Assert.Equal(RwLockMode.Read, Assert.IsType<RwLeaseInfo>(status.Info).Mode);
        Assert.Equal("first", status.Info.Owner);

        Assert.True(await client.ForceReleaseRwLockAsync(key, first.FencingToken));
        await RedisServer.WaitUntilAsync(() => Task.FromResult(first.LostToken.IsCancellationRequested), Bound, "the forced lease's LostToken");
        Assert.Equal(LeaseEndReason.Forced, first.LossReason);
        Assert.False(second.LostToken.IsCancellationRequested);
        Assert.True((await client.CheckRwLockAsync(key, second.Token)).Held);

        Assert.Equal(new ReleaseResult(true, null), await second.ReleaseAsync());
        Assert.Null(await client.InspectRwLockAsync(key));
        await using var writer = await client.AcquireRwLockAsync(key, RwLockMode.Write);
        Assert.True(writer.FencingToken > second.FencingToken);
    }

    private bool Written(string name) => File.Exists(Path.Combine(_dir, name)) && File.ReadAllText(Path.Combine(_dir, name)).EndsWith('\n');

    /// <summary>The LOCK_MODE and LOCK_FENCING_TOKEN a command wrote.</summary>
    private (string Mode, long FencingToken) Seen(string name)
    {
        var seen = File.ReadAllText(Path.Combine(_dir, name)).Trim().Split(' ');
        return (seen[0], long.Parse(seen[1], CultureInfo.InvariantCulture));
    }

    private static Task Eventually(Func<bool> condition, string what) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(condition()), Bound, what);
}
