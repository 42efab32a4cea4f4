using System.Diagnostics;
using System.Globalization;
using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using LockClient = LockService.Client.LockClient;
using LockCtl = LockService.Tests.Clients.LockCtlProcess;

namespace LockService.Tests.Clients;

/// <summary>
/// lockctl as a real process (dotnet lockctl.dll) against the service on a real Kestrel port, running
/// <c>sh -c</c> scripts that record what they see into files of a temporary directory.
/// </summary>
public sealed class LockCtlTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private static readonly Dictionary<string, string?> OperatorKeys = new()
    {
        ["Auth:ApiKeys:0:Key"] = "client-key-0123456789",
        ["Auth:ApiKeys:0:Tenant"] = "ops",
        ["Auth:ApiKeys:1:Key"] = "admin-key-0123456789",
        ["Auth:ApiKeys:1:Tenant"] = "ops",
        ["Auth:ApiKeys:1:Role"] = "admin",
    };

    private static readonly string[] ClientKey = ["--api-key", "client-key-0123456789"];
    private static readonly string[] AdminKey = ["--api-key", "admin-key-0123456789"];

    private readonly string _dir = Directory.CreateTempSubdirectory("lockctl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Run_gives_the_command_the_lock_in_its_environment_exits_with_its_code_and_frees_the_lock_at_once()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(Run_gives_the_command_the_lock_in_its_environment_exits_with_its_code_and_frees_the_lock_at_once));

        var run = await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--ttl", "10s", "--owner", "test", "--", "sh", "-c", $"echo \"$LOCK_KEY $LOCK_TOKEN $LOCK_FENCING_TOKEN $LOCKSERVICE_URL\" > {_dir}/env; exit 3"]);

        Assert.Equal(3, run.ExitCode);
        var seen = (await File.ReadAllTextAsync(Path.Combine(_dir, "env"))).Trim().Split(' ');
        Assert.Equal(key, seen[0]);
        Assert.Matches("^[0-9a-f]{32}$", seen[1]);
        Assert.True(long.Parse(seen[2], CultureInfo.InvariantCulture) > 0);
        Assert.Equal(service.BaseAddress.ToString().TrimEnd('/'), seen[3]);
        Assert.Null(await LockClient.Create(service.BaseAddress).InspectAsync(key));
    }

    [Fact]
    public async Task Two_runs_of_one_key_one_runs_the_other_exits_75_without_running_and_with_wait_runs_after_the_first()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(Two_runs_of_one_key_one_runs_the_other_exits_75_without_running_and_with_wait_runs_after_the_first));

        using var first = LockCtl.Start(service.BaseAddress, ["run", key, "--", "sh", "-c", $"echo $LOCK_FENCING_TOKEN > {_dir}/first; while [ ! -e {_dir}/stop ]; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "first")), "the first command to start");

        var second = await LockCtl.RunAsync(service.BaseAddress, ["run", "--wait", "0s", key, "--", "sh", "-c", $"touch {_dir}/second"]);
        Assert.Equal(75, second.ExitCode);
        Assert.Contains("held", second.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "second")));
        Assert.Equal(9, (await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--conflict-exit-code", "9", "--", "true"])).ExitCode);

        using var third = LockCtl.Start(service.BaseAddress, ["run", key, "--wait", "forever", "--", "sh", "-c", $"echo $LOCK_FENCING_TOKEN > {_dir}/third"]);
        await service.WaitForWaitersAsync(1);
        Assert.False(File.Exists(Path.Combine(_dir, "third")));
        await File.WriteAllTextAsync(Path.Combine(_dir, "stop"), "");

        Assert.Equal(0, await first.ExitAsync());
        Assert.Equal(0, await third.ExitAsync());
        Assert.True(Fence("third") > Fence("first"));
    }

    [Fact]
    public async Task Wait_forever_resends_its_acquire_past_the_services_MaxWaitMs()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?> { ["Locks:MaxWaitMs"] = "1000" }, kestrel: true);
        var key = Keys.Unique(nameof(Wait_forever_resends_its_acquire_past_the_services_MaxWaitMs));
        var client = LockClient.Create(service.BaseAddress);
        var holder = (await client.TryAcquireAsync(key, TimeSpan.FromSeconds(30)))!;

        using var waiter = LockCtl.Start(service.BaseAddress, ["run", key, "--wait", "forever", "--", "sh", "-c", $"touch {_dir}/ran"]);
        await Task.Delay(2500); // Not synchronization: the time during which the waiter must re-send (MaxWaitMs is 1 s).
        Assert.False(File.Exists(Path.Combine(_dir, "ran")));
        await client.ReleaseAsync(key, holder.Token);

        Assert.Equal(0, await waiter.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "ran")));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("5000")] // Below the 25 s the watch asks for at first: it must watch within the service's bound.
    public async Task A_force_release_sends_SIGTERM_to_the_commands_process_group_within_a_second_and_lockctl_exits_70(string? maxWaitMs)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, maxWaitMs is null ? null : new Dictionary<string, string?> { ["Locks:MaxWaitMs"] = maxWaitMs }, kestrel: true);
        var key = Keys.Unique(nameof(A_force_release_sends_SIGTERM_to_the_commands_process_group_within_a_second_and_lockctl_exits_70));
        var script = $$"""
            trap 'date +%s%N > {{_dir}}/parent; exit 143' TERM
            (trap 'date +%s%N > {{_dir}}/child; exit 0' TERM; touch {{_dir}}/child-ready; while true; do sleep 0.02; done) &
            while [ ! -e {{_dir}}/child-ready ]; do sleep 0.02; done
            touch {{_dir}}/ready
            wait
            """;
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--ttl", "30s", "--", "sh", "-c", script]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command and its child to start");

        var forcedAt = DateTimeOffset.UtcNow;
        Assert.True((await service.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);

        Assert.Equal(70, await run.ExitAsync());
        Assert.Contains("forced", run.Error, StringComparison.Ordinal);
        foreach (var process in new[] { "parent", "child" })
        {
            var termAt = await SignalledAtAsync(process);
            Assert.True(termAt - forcedAt < TimeSpan.FromSeconds(1), $"{process} got SIGTERM {(termAt - forcedAt).TotalMilliseconds:0} ms after the force-release");
        }
    }

    [Fact]
    public async Task A_command_that_ignores_SIGTERM_gets_SIGKILL_after_the_grace()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(A_command_that_ignores_SIGTERM_gets_SIGKILL_after_the_grace));
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--grace", "1s", "--", "sh", "-c", $"trap '' TERM; echo $$ > {_dir}/pid; while true; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "pid")) && File.ReadAllText(Path.Combine(_dir, "pid")).EndsWith('\n'), "the command to start");
        var pid = File.ReadAllText(Path.Combine(_dir, "pid")).Trim();

        var forced = Stopwatch.StartNew();
        await service.Engine().ForceReleaseAsync(LeaseName.Of(key));
        Assert.Equal(70, await run.ExitAsync());
        Assert.InRange(forced.Elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(5));
        Assert.False(Directory.Exists($"/proc/{pid}"), "the command outlived SIGKILL");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SIGTERM_to_lockctl_goes_to_the_command_and_the_lock_is_released_after_it_exits(bool permit)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(SIGTERM_to_lockctl_goes_to_the_command_and_the_lock_is_released_after_it_exits) + permit);
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, .. LimitIf(permit), "--", "sh", "-c", $"trap 'touch {_dir}/term; exit 5' TERM; touch {_dir}/ready; while true; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to start");

        Curl.Signal(run.Process, "TERM");
        Assert.Equal(5, await run.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "term")));
        Assert.False(await HeldAsync(service, key, permit));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_service_gone_mid_run_keeps_the_command_until_just_before_the_last_granted_expiry_then_exit_70_unavailable(bool permit)
    {
        var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(The_service_gone_mid_run_keeps_the_command_until_just_before_the_last_granted_expiry_then_exit_70_unavailable) + permit);
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--ttl", "3s", .. LimitIf(permit), "--", "sh", "-c", $"trap 'date +%s%N > {_dir}/parent; exit 0' TERM; touch {_dir}/ready; while true; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to start");

        var stoppedAt = DateTimeOffset.UtcNow;
        var stopping = service.DisposeAsync().AsTask();
        Assert.Equal(70, await run.ExitAsync());
        Assert.Contains("unavailable", run.Error, StringComparison.Ordinal);

        // The last renewal came at most ttl/3 (1 s) before the stop: the expiry it granted is 2..3 s after the stop,
        // and lockctl stops the command a tenth of the TTL before it.
        var termAt = await SignalledAtAsync("parent");
        Assert.InRange(termAt - stoppedAt, TimeSpan.FromMilliseconds(1500), TimeSpan.FromMilliseconds(2900));
        await stopping.WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // timeout(1) runs lockctl in a process group of its own and SIGKILLs that whole group; COMMAND's is apart.
    public async Task SIGKILL_of_lockctl_stops_the_command_at_once_while_the_lease_is_still_held(bool wholeGroupByTimeout)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(SIGKILL_of_lockctl_stops_the_command_at_once_while_the_lease_is_still_held) + wholeGroupByTimeout);
        // The pause before the pid: as below, the SIGKILL comes after lockctl has told its watchdog the command's group.
        string[] args = ["run", key, "--ttl", "20s", "--", "sh", "-c", $"sleep 0.5; echo $$ > {_dir}/pid; exec sleep 60"];
        using var run = wholeGroupByTimeout ? LockCtl.Start(service.BaseAddress, args, "timeout", "-s", "KILL", "8") : LockCtl.Start(service.BaseAddress, args);
        var pid = await StartedAsync();
        if (!wholeGroupByTimeout)
        {
            run.Process.Kill();
        }

        await run.Process.WaitForExitAsync().WaitAsync(Bound);
        var killed = Stopwatch.StartNew();
        await Eventually(() => !LockCtl.Running(pid), "the command to stop after lockctl's SIGKILL");

        // Well before the TTL: the lease, no longer renewed, still runs, and nothing runs under it any more.
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(5), $"the command stopped {killed.ElapsedMilliseconds} ms after lockctl's SIGKILL");
        Assert.True(await HeldAsync(service, key, permit: false));
    }

    [Fact]
    public async Task SIGKILL_of_lockctl_kills_a_command_that_ignores_SIGTERM_before_the_lease_ends_whatever_the_grace()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(SIGKILL_of_lockctl_kills_a_command_that_ignores_SIGTERM_before_the_lease_ends_whatever_the_grace));
        // The pause before the pid: the SIGKILL must come after lockctl told its watchdog the command's group, its very
        // next system call after the spawn (on a loaded machine lockctl may wait a while for a CPU to make it).
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--ttl", "3s", "--grace", "60s", "--", "sh", "-c", $"trap '' TERM; sleep 0.5; echo $$ > {_dir}/pid; while true; do sleep 0.05; done"]);
        var pid = await StartedAsync();
        var killed = Stopwatch.StartNew();
        run.Process.Kill();
        await Eventually(() => !LockCtl.Running(pid), "the command to be killed after lockctl's SIGKILL");

        // SIGKILL came no later than just before the last granted expiry (at most a TTL after the kill), not after the grace.
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(3), $"the command was killed {killed.ElapsedMilliseconds} ms after lockctl");
    }

    [Fact]
    public async Task SIGTERM_to_lockctl_the_moment_the_command_starts_goes_to_the_command_and_the_lock_is_released_after_it_exits()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(SIGTERM_to_lockctl_the_moment_the_command_starts_goes_to_the_command_and_the_lock_is_released_after_it_exits));

        // The command's first act is to signal lockctl (its parent): the earliest moment after the spawn anyone can.
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--", "sh", "-c", $"trap 'touch {_dir}/term; exit 5' TERM; kill -TERM $PPID; while true; do sleep 0.02; done"]);

        Assert.Equal(5, await run.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "term")));
        Assert.False(await HeldAsync(service, key, permit: false));
    }

    [Theory]
    [InlineData(201)]
    [InlineData(200)]
    public async Task A_maintenance_page_answering_the_acquire_is_69_and_the_command_is_not_run(int status)
    {
        await using var proxy = await MaintenanceProxy.StartAsync(upstream: null);
        proxy.MaintenanceStatus = status;

        var run = await LockCtl.RunAsync(proxy.BaseAddress, ["run", Keys.Unique("maintenance"), "--", "touch", $"{_dir}/ran"]);

        Assert.Equal(69, run.ExitCode);
        Assert.False(File.Exists(Path.Combine(_dir, "ran")));
        Assert.StartsWith("lockctl: ", run.Error, StringComparison.Ordinal);
        Assert.Single(run.Error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task A_maintenance_page_while_the_command_runs_is_ridden_out_and_the_commands_exit_code_stands()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        await using var proxy = await MaintenanceProxy.StartAsync(service.BaseAddress);
        var key = Keys.Unique(nameof(A_maintenance_page_while_the_command_runs_is_ridden_out_and_the_commands_exit_code_stands));
        using var run = LockCtl.Start(proxy.BaseAddress, ["run", key, "--ttl", "3s", "--", "sh", "-c", $"touch {_dir}/ready; while [ ! -e {_dir}/stop ]; do sleep 0.02; done; exit 7"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to start");

        // A page for 1.5 s (renewals every second meet it), then the service again.
        proxy.Maintenance = true;
        await Eventually(() => proxy.PagesServed >= 2, "a renewal to meet the maintenance page");
        await Task.Delay(1000); // Not synchronization: how long the page stays, below what is left of the TTL.
        proxy.Maintenance = false;

        // Past the expiry granted before the page: renewals went on, the command runs under the lock.
        var after = Stopwatch.StartNew();
        while (after.Elapsed < TimeSpan.FromSeconds(4))
        {
            Assert.False(run.Process.HasExited, $"lockctl exited {after.ElapsedMilliseconds} ms after the page ended");
            await Task.Delay(100);
        }

        Assert.True(await HeldAsync(service, key, permit: false));

        // The command ends while the page is back: its exit code stands, and the lock is left to its TTL. The page comes
        // back right after a renewal was granted, so that the command's end has the whole lease left to happen in, not
        // whatever remained of it since a renewal up to a second earlier.
        var renewals = proxy.ExtendsAnswered;
        await Eventually(() => proxy.ExtendsAnswered > renewals, "a renewal before the page comes back");
        proxy.Maintenance = true;
        await File.WriteAllTextAsync(Path.Combine(_dir, "stop"), "");
        Assert.Equal(7, await run.ExitAsync());
        Assert.Contains("could not release", run.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(64, new[] { "run", "k", "--ttl", "5x", "--", "true" })]
    [InlineData(64, new[] { "run", "k" })]
    [InlineData(64, new[] { "run", "k", "--ttl", "1ms", "--", "true" })]
    [InlineData(64, new[] { "inspect", ".bad" })]
    [InlineData(1, new[] { "inspect", "free-key-of-LockCtlTests" })]
    [InlineData(127, new[] { "run", "no-such-command-key", "--", "/no/such/command" })]
    [InlineData(64, new[] { "run", "k", "--limit", "0", "--", "true" })]
    [InlineData(64, new[] { "run", "k", "--limit", "-2", "--", "true" })]
    [InlineData(64, new[] { "run", "k", "--limit", "three", "--", "true" })]
    [InlineData(64, new[] { "acquire", "k", "--limit", "10001" })]
    [InlineData(64, new[] { "list", "--limit", "1001" })]
    [InlineData(64, new[] { "list", "--limit", "0" })]
    [InlineData(64, new[] { "list", "--semaphores", "--limit", "1001" })]
    [InlineData(1, new[] { "inspect", "free-key-of-LockCtlTests", "--semaphore" })]
    public async Task Exit_codes_tell_the_outcomes_apart(int exitCode, string[] args)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var run = await LockCtl.RunAsync(service.BaseAddress, args);
        Assert.Equal(exitCode, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.StartsWith("lockctl: ", run.Error, StringComparison.Ordinal);
        Assert.Single(run.Error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task Unreachable_service_is_69_and_401_is_77_and_script_subcommands_print_json()
    {
        var unreachable = await LockCtl.RunAsync(new Uri($"http://127.0.0.1:{RedisServer.FreePort()}"), ["run", "k", "--", "true"]);
        Assert.Equal(69, unreachable.ExitCode);

        await using var secured = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0:Key"] = "client-key-0123456789",
            ["Auth:ApiKeys:0:Tenant"] = "t1",
        }, kestrel: true);
        Assert.Equal(77, (await LockCtl.RunAsync(secured.BaseAddress, ["inspect", "k"])).ExitCode);

        var key = Keys.Unique(nameof(Unreachable_service_is_69_and_401_is_77_and_script_subcommands_print_json));
        var withKey = new[] { "--api-key", "client-key-0123456789" };
        var acquired = await LockCtl.RunAsync(secured.BaseAddress, ["acquire", key, "--ttl", "20s", "--owner", "script", .. withKey]);
        Assert.Equal(0, acquired.ExitCode);
        var lease = System.Text.Json.JsonDocument.Parse(acquired.Output).RootElement;
        var token = lease.GetProperty("token").GetString()!;
        Assert.Equal(75, (await LockCtl.RunAsync(secured.BaseAddress, ["acquire", key, .. withKey])).ExitCode);

        var inspected = await LockCtl.RunAsync(secured.BaseAddress, ["inspect", key, .. withKey]);
        Assert.Equal(lease.GetProperty("fencingToken").GetInt64(), System.Text.Json.JsonDocument.Parse(inspected.Output).RootElement.GetProperty("fencingToken").GetInt64());
        Assert.DoesNotContain(token, inspected.Output, StringComparison.Ordinal);

        var extended = await LockCtl.RunAsync(secured.BaseAddress, ["extend", key, token, "--ttl", "5s", .. withKey]);
        Assert.Equal(5000, System.Text.Json.JsonDocument.Parse(extended.Output).RootElement.GetProperty("ttlMs").GetInt64());
        Assert.Equal(0, (await LockCtl.RunAsync(secured.BaseAddress, ["release", key, token, .. withKey])).ExitCode);
        var again = await LockCtl.RunAsync(secured.BaseAddress, ["release", key, token, .. withKey]);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("released", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_and_force_release_go_through_the_operator_endpoints_with_an_admin_key_and_a_client_key_is_77()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, OperatorKeys, kestrel: true);
        var prefix = Keys.Unique("ctl-list");
        foreach (var i in Enumerable.Range(0, 3))
        {
            Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["acquire", $"{prefix}-{i}", "--ttl", "30s", .. ClientKey])).ExitCode);
        }

        var listed = await LockCtl.RunAsync(service.BaseAddress, ["list", "--prefix", prefix, .. AdminKey]);
        Assert.Equal(0, listed.ExitCode);
        var keys = System.Text.Json.JsonDocument.Parse(listed.Output).RootElement.GetProperty("locks").EnumerateArray().Select(l => l.GetProperty("key").GetString()).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{prefix}-{i}"), keys);
        Assert.DoesNotContain("token", listed.Output, StringComparison.Ordinal);

        Assert.Equal(77, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. ClientKey])).ExitCode);
        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. AdminKey])).ExitCode);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. AdminKey])).ExitCode);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["inspect", $"{prefix}-0", .. ClientKey])).ExitCode);
    }

    [Fact]
    public async Task List_semaphores_prints_every_page_of_held_permits_without_tokens_with_an_admin_key_and_a_client_key_is_77()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, OperatorKeys, kestrel: true);
        var prefix = Keys.Unique("ctl-list-sem") + "-";
        var permits = new List<System.Text.Json.JsonElement>();
        foreach (var (name, limit, owner) in new[] { ("two", "2", "two-a"), ("two", "2", "two-b"), ("one", "3", "one-a") })
        {
            var acquired = await LockCtl.RunAsync(service.BaseAddress, ["acquire", prefix + name, "--limit", limit, "--ttl", "30s", "--owner", owner, .. ClientKey]);
            Assert.Equal(0, acquired.ExitCode);
            permits.Add(System.Text.Json.JsonDocument.Parse(acquired.Output).RootElement);
        }

        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["acquire", prefix + "a-lock", "--ttl", "30s", .. ClientKey])).ExitCode);

        // A page size of 1: the two semaphores are on different pages, and lockctl prints them all in one document.
        var listed = await LockCtl.RunAsync(service.BaseAddress, ["list", "--semaphores", "--prefix", prefix, "--limit", "1", .. AdminKey]);
        Assert.Equal(0, listed.ExitCode);
        var root = System.Text.Json.JsonDocument.Parse(listed.Output).RootElement;
        Assert.Equal(System.Text.Json.JsonValueKind.Null, root.GetProperty("cursor").ValueKind);
        var semaphores = root.GetProperty("semaphores").EnumerateArray().ToDictionary(s => s.GetProperty("key").GetString()!);
        Assert.Equal([prefix + "one", prefix + "two"], semaphores.Keys.Order());
        foreach (var (key, semaphore) in semaphores)
        {
            var mine = permits.Where(p => p.GetProperty("key").GetString() == key).ToList();
            Assert.Equal(mine.Count, semaphore.GetProperty("held").GetInt32());
            Assert.Equal(
                mine.Select(p => (p.GetProperty("slot").GetInt32(), p.GetProperty("fencingToken").GetInt64(), p.GetProperty("owner").GetString())),
                semaphore.GetProperty("permits").EnumerateArray().Select(p => (p.GetProperty("slot").GetInt32(), p.GetProperty("fencingToken").GetInt64(), p.GetProperty("owner").GetString())));
        }

        Assert.All(permits, p => Assert.DoesNotContain(p.GetProperty("token").GetString()!, listed.Output, StringComparison.Ordinal));
        Assert.DoesNotContain("token", listed.Output, StringComparison.Ordinal);

        var denied = await LockCtl.RunAsync(service.BaseAddress, ["list", "--semaphores", "--prefix", prefix, .. ClientKey]);
        Assert.Equal(77, denied.ExitCode);
        Assert.Empty(denied.Output);
        Assert.StartsWith("lockctl: ", denied.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_waits_out_the_rate_limit_between_pages_and_prints_every_lock()
    {
        // One request a second and a page of one lock: the walk meets the limit by its second page.
        var limited = new Dictionary<string, string?>(OperatorKeys) { ["RateLimit:PermitsPerSecond"] = "1" };
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, limited, kestrel: true);
        var prefix = Keys.Unique("ctl-list-limited");
        await using (var unlimited = new LockServiceFactory(fixture.Redis.ConnectionString, OperatorKeys))
        {
            var http = unlimited.CreateClient();
            http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + ClientKey[1]);
            foreach (var i in Enumerable.Range(0, 3))
            {
                Assert.NotNull(await new LockClient(http).TryAcquireAsync($"{prefix}-{i}", TimeSpan.FromSeconds(60)));
            }
        }

        var listed = await LockCtl.RunAsync(service.BaseAddress, ["list", "--prefix", prefix, "--limit", "1", .. AdminKey]);

        Assert.True(listed.ExitCode == 0, listed.Error);
        var keys = System.Text.Json.JsonDocument.Parse(listed.Output).RootElement.GetProperty("locks").EnumerateArray().Select(l => l.GetProperty("key").GetString()).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{prefix}-{i}"), keys);
        Assert.Contains(service.Log.Lines, line => line.Contains("GET /admin/locks responded 429 ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Run_with_limit_2_runs_two_commands_at_once_each_with_its_slot_a_third_exits_75_and_with_wait_runs_once_a_place_frees()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(Run_with_limit_2_runs_two_commands_at_once_each_with_its_slot_a_third_exits_75_and_with_wait_runs_once_a_place_frees));
        string[] Holder(string name) =>
            ["run", key, "--limit", "2", "--owner", name, "--", "sh", "-c",
                $"echo \"$LOCK_KEY $LOCK_SLOT $LOCK_LIMIT $LOCK_FENCING_TOKEN $LOCK_TOKEN $LOCKSERVICE_URL\" > {_dir}/{name}; while [ ! -e {_dir}/stop-{name} ]; do sleep 0.02; done"];

        using var first = LockCtl.Start(service.BaseAddress, Holder("first"));
        using var second = LockCtl.Start(service.BaseAddress, Holder("second"));
        await Eventually(() => Written("first") && Written("second"), "both commands to run at once");
        var seen = new[] { "first", "second" }.ToDictionary(name => name, name => File.ReadAllText(Path.Combine(_dir, name)).Trim().Split(' '));
        Assert.All(seen.Values, env => Assert.Equal((key, "2", service.BaseAddress.ToString().TrimEnd('/')), (env[0], env[2], env[5])));
        Assert.All(seen.Values, env => Assert.Matches("^[0-9a-f]{32}$", env[4]));
        Assert.Equal(["0", "1"], seen.Values.Select(env => env[1]).Order());
        var semaphore = await LockClient.Create(service.BaseAddress).InspectSemaphoreAsync(key);
        Assert.Equal(2, semaphore!.Held);
        Assert.All(semaphore.Permits, p => Assert.Equal(long.Parse(seen[p.Owner!][3], CultureInfo.InvariantCulture), p.FencingToken));

        var third = await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--limit", "2", "--", "touch", $"{_dir}/third"]);
        Assert.Equal(75, third.ExitCode);
        Assert.Contains("2 permits held", third.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "third")));
        Assert.Equal(9, (await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--limit", "2", "--conflict-exit-code", "9", "--", "true"])).ExitCode);

        using var waiter = LockCtl.Start(service.BaseAddress, ["run", key, "--limit", "2", "--wait", "forever", "--", "sh", "-c", $"echo $LOCK_SLOT > {_dir}/waiter"]);
        await service.WaitForSemaphoreWaitersAsync(1);
        Assert.False(File.Exists(Path.Combine(_dir, "waiter")));
        await File.WriteAllTextAsync(Path.Combine(_dir, "stop-first"), "");

        Assert.Equal(0, await first.ExitAsync());
        Assert.Equal(0, await waiter.ExitAsync());
        Assert.Equal(seen["first"][1], File.ReadAllText(Path.Combine(_dir, "waiter")).Trim());
        Assert.False(second.Process.HasExited);
        await File.WriteAllTextAsync(Path.Combine(_dir, "stop-second"), "");
        Assert.Equal(0, await second.ExitAsync());
        Assert.False(await HeldAsync(service, key, permit: true));
    }

    [Fact]
    public async Task A_permit_force_released_by_an_operator_stops_the_command_within_a_second_and_lockctl_exits_70_saying_forced()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, OperatorKeys, kestrel: true);
        var key = Keys.Unique(nameof(A_permit_force_released_by_an_operator_stops_the_command_within_a_second_and_lockctl_exits_70_saying_forced));
        using var other = LockCtl.Start(service.BaseAddress, ["run", key, "--limit", "3", .. ClientKey, "--", "sh", "-c", $"touch {_dir}/other; while [ ! -e {_dir}/stop ]; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "other")), "the other command to start");
        var script = $"trap 'date +%s%N > {_dir}/parent; exit 0' TERM; echo $LOCK_SLOT > {_dir}/slot; while true; do sleep 0.02; done";
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--limit", "3", "--ttl", "30s", .. ClientKey, "--", "sh", "-c", script]);
        await Eventually(() => Written("slot"), "the command to start");
        var slot = File.ReadAllText(Path.Combine(_dir, "slot")).Trim();

        Assert.Equal(77, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", key, "--slot", slot, .. ClientKey])).ExitCode);
        var forced = await LockCtl.RunAsync(service.BaseAddress, ["force-release", key, "--slot", slot, .. AdminKey]);
        var forcedBy = DateTimeOffset.UtcNow;
        Assert.Equal(0, forced.ExitCode);

        Assert.Equal(70, await run.ExitAsync());
        Assert.Contains($"lost the permit (slot {slot})", run.Error, StringComparison.Ordinal);
        Assert.Contains("forced", run.Error, StringComparison.Ordinal);
        var termAt = await SignalledAtAsync("parent");
        Assert.True(termAt - forcedBy < TimeSpan.FromSeconds(1), $"SIGTERM came {(termAt - forcedBy).TotalMilliseconds:0} ms after the force-release answered");

        // Only that permit: the other command still runs under its own.
        Assert.False(other.Process.HasExited);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", key, "--slot", slot, .. AdminKey])).ExitCode);
        await File.WriteAllTextAsync(Path.Combine(_dir, "stop"), "");
        Assert.Equal(0, await other.ExitAsync());
    }

    [Fact]
    public async Task Acquire_with_limit_prints_the_permit_and_release_extend_inspect_take_semaphore_or_LOCK_LIMIT_inside_run()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(Acquire_with_limit_prints_the_permit_and_release_extend_inspect_take_semaphore_or_LOCK_LIMIT_inside_run));
        var acquired = await LockCtl.RunAsync(service.BaseAddress, ["acquire", key, "--limit", "2", "--ttl", "20s", "--owner", "script"]);
        Assert.Equal(0, acquired.ExitCode);
        var permit = System.Text.Json.JsonDocument.Parse(acquired.Output).RootElement;
        Assert.Equal((0, 2, "script"), (permit.GetProperty("slot").GetInt32(), permit.GetProperty("limit").GetInt32(), permit.GetProperty("owner").GetString()));
        var token = permit.GetProperty("token").GetString()!;

        // Inside run, `lockctl extend KEY` takes LOCK_TOKEN and, with LOCK_LIMIT set, knows it is a permit's.
        var lockctl = Path.Combine(AppContext.BaseDirectory, "lockctl.dll");
        var inside = await LockCtl.RunAsync(service.BaseAddress, ["run", key, "--limit", "2", "--", "sh", "-c", $"dotnet {lockctl} extend \"$LOCK_KEY\" --ttl 7s > {_dir}/extended"]);
        Assert.Equal(0, inside.ExitCode);
        var extendedInside = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "extended"))).RootElement;
        Assert.Equal((1, 7000L), (extendedInside.GetProperty("slot").GetInt32(), extendedInside.GetProperty("ttlMs").GetInt64()));

        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["acquire", key, "--limit", "2"])).ExitCode);
        var full = await LockCtl.RunAsync(service.BaseAddress, ["acquire", key, "--limit", "2", "--wait", "100ms"]);
        Assert.Equal(75, full.ExitCode);
        Assert.Contains("2 permits held", full.Error, StringComparison.Ordinal);

        var inspected = await LockCtl.RunAsync(service.BaseAddress, ["inspect", key, "--semaphore"]);
        var semaphore = System.Text.Json.JsonDocument.Parse(inspected.Output).RootElement;
        Assert.Equal(2, semaphore.GetProperty("held").GetInt32());
        Assert.Equal(permit.GetProperty("fencingToken").GetInt64(), semaphore.GetProperty("permits")[0].GetProperty("fencingToken").GetInt64());
        Assert.DoesNotContain(token, inspected.Output, StringComparison.Ordinal);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["inspect", key])).ExitCode);

        var extended = await LockCtl.RunAsync(service.BaseAddress, ["extend", key, token, "--semaphore", "--ttl", "5s"]);
        var renewed = System.Text.Json.JsonDocument.Parse(extended.Output).RootElement;
        Assert.Equal((0, 5000L), (renewed.GetProperty("slot").GetInt32(), renewed.GetProperty("ttlMs").GetInt64()));
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["release", key, token])).ExitCode);
        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["release", key, token, "--semaphore"])).ExitCode);
        var again = await LockCtl.RunAsync(service.BaseAddress, ["release", key, token, "--semaphore"]);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("released", again.Error, StringComparison.Ordinal);
    }

    [TerminalFact]
    public async Task In_a_terminal_the_command_gets_the_foreground_so_it_reads_the_keyboard_and_lockctl_releases_and_exits_with_its_code()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(In_a_terminal_the_command_gets_the_foreground_so_it_reads_the_keyboard_and_lockctl_releases_and_exits_with_its_code));

        // In a process group of its own but not the terminal's foreground, the read would stop the command (SIGTTIN).
        using var run = LockCtl.StartInTerminal(service.BaseAddress, ["run", key, "--", "sh", "-c", "read x; echo \"got:$x\"; exit 3"]);
        await run.TypeAsync("hello\n");

        Assert.Equal(3, await run.ExitAsync());
        Assert.Contains("got:hello", run.Output, StringComparison.Ordinal);
        Assert.False(await HeldAsync(service, key, permit: false));
    }

    [TerminalFact]
    public async Task In_a_terminal_Ctrl_C_goes_to_the_command_and_lockctl_releases_after_it_exits_with_its_code()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(In_a_terminal_Ctrl_C_goes_to_the_command_and_lockctl_releases_after_it_exits_with_its_code));

        // The read succeeds only once the command has the terminal: Ctrl-C comes after that.
        using var run = LockCtl.StartInTerminal(service.BaseAddress, ["run", key, "--", "sh", "-c", $"trap 'exit 9' INT; read x; touch {_dir}/ready; while true; do sleep 0.02; done"]);
        await run.TypeAsync("go\n");
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to read its line");
        Assert.True(await HeldAsync(service, key, permit: false));
        await run.TypeAsync("\u0003");

        Assert.Equal(9, await run.ExitAsync());
        Assert.False(await HeldAsync(service, key, permit: false));
    }

    [TerminalFact]
    public async Task In_a_terminal_a_lost_lock_exits_70_and_gives_the_terminal_back_so_the_next_read_of_the_session_works()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(In_a_terminal_a_lost_lock_exits_70_and_gives_the_terminal_back_so_the_next_read_of_the_session_works));

        // The shell after lockctl is the terminal's session leader: its read fails (EIO) unless lockctl gave the terminal back.
        using var run = LockCtl.StartInTerminal(
            service.BaseAddress, ["run", key, "--", "sh", "-c", $"touch {_dir}/ready; sleep 30"], then: "echo \"lockctl:$?\"; read x; echo \"got:$x\"");
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to start");
        Assert.True((await service.Engine().ForceReleaseAsync(LeaseName.Of(key))).Released);
        await run.TypeAsync("hello\n");

        Assert.Equal(0, await run.ExitAsync());
        Assert.Contains("forced", run.Output, StringComparison.Ordinal);
        Assert.Contains("lockctl:70", run.Output, StringComparison.Ordinal);
        Assert.Contains("got:hello", run.Output, StringComparison.Ordinal);
    }

    /// <summary>lockctl's semaphore flag for a test run for a permit as well as for a lock.</summary>
    private static string[] LimitIf(bool permit) => permit ? ["--limit", "2"] : [];

    private static async Task<bool> HeldAsync(LockServiceFactory service, string key, bool permit)
    {
        var client = LockClient.Create(service.BaseAddress);
        return permit ? await client.InspectSemaphoreAsync(key) is not null : await client.InspectAsync(key) is not null;
    }

    /// <summary>True once a script's `echo ... > file` has written its whole line.</summary>
    private bool Written(string name) => File.Exists(Path.Combine(_dir, name)) && File.ReadAllText(Path.Combine(_dir, name)).EndsWith('\n');

    /// <summary>The command's pid, once it has written it (to <c>pid</c>).</summary>
    private async Task<int> StartedAsync()
    {
        await Eventually(() => Written("pid"), "the command to start");
        return int.Parse(File.ReadAllText(Path.Combine(_dir, "pid")).Trim(), CultureInfo.InvariantCulture);
    }

    private long Fence(string name) => long.Parse(File.ReadAllText(Path.Combine(_dir, name)).Trim(), CultureInfo.InvariantCulture);

    /// <summary>When a script's trap recorded its SIGTERM (its `date +%s%N`), waiting for the file within the bound.</summary>
    private async Task<DateTimeOffset> SignalledAtAsync(string name)
    {
        var path = Path.Combine(_dir, name);
        await Eventually(() => File.Exists(path) && File.ReadAllText(path).EndsWith('\n'), $"{name} to record its SIGTERM");
        return DateTimeOffset.UnixEpoch.AddTicks(long.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture) / 100);
    }

    private static Task Eventually(Func<bool> condition, string what) =>
        RedisServer.WaitUntilAsync(() => Task.FromResult(condition()), Bound, what);
}

/// <summary>A fact that runs lockctl in a pseudo-terminal: skipped with the reason on a machine without util-linux's script.</summary>
public sealed class TerminalFactAttribute : FactAttribute
{
    public TerminalFactAttribute() => Skip = RedisServer.FindOnPath("script") is null
        ? "needs util-linux's script on PATH (Debian: apt-get install bsdutils) as the terminal lockctl runs in"
        : null;
}
