using System.Diagnostics;
using System.Globalization;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using LockClient = LockService.Client.LockClient;

namespace LockService.Tests.Clients;

/// <summary>
/// lockctl as a real process (dotnet lockctl.dll) against the service on a real Kestrel port, running
/// <c>sh -c</c> scripts that record what they see into files of a temporary directory.
/// </summary>
public sealed class LockCtlTests(ApiFixture fixture) : IClassFixture<ApiFixture>, IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
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

    [Fact]
    public async Task A_force_release_sends_SIGTERM_to_the_commands_process_group_within_a_second_and_lockctl_exits_70()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
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
        Assert.True((await service.Engine().ForceReleaseAsync(LockName.Of(key))).Released);

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
        await service.Engine().ForceReleaseAsync(LockName.Of(key));
        Assert.Equal(70, await run.ExitAsync());
        Assert.InRange(forced.Elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(5));
        Assert.False(Directory.Exists($"/proc/{pid}"), "the command outlived SIGKILL");
    }

    [Fact]
    public async Task SIGTERM_to_lockctl_goes_to_the_command_and_the_lock_is_released_after_it_exits()
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(SIGTERM_to_lockctl_goes_to_the_command_and_the_lock_is_released_after_it_exits));
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--", "sh", "-c", $"trap 'touch {_dir}/term; exit 5' TERM; touch {_dir}/ready; while true; do sleep 0.02; done"]);
        await Eventually(() => File.Exists(Path.Combine(_dir, "ready")), "the command to start");

        Curl.Signal(run.Process, "TERM");
        Assert.Equal(5, await run.ExitAsync());
        Assert.True(File.Exists(Path.Combine(_dir, "term")));
        Assert.Null(await LockClient.Create(service.BaseAddress).InspectAsync(key));
    }

    [Fact]
    public async Task The_service_gone_mid_run_keeps_the_command_until_just_before_the_last_granted_expiry_then_exit_70_unavailable()
    {
        var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var key = Keys.Unique(nameof(The_service_gone_mid_run_keeps_the_command_until_just_before_the_last_granted_expiry_then_exit_70_unavailable));
        using var run = LockCtl.Start(service.BaseAddress, ["run", key, "--ttl", "3s", "--", "sh", "-c", $"trap 'date +%s%N > {_dir}/parent; exit 0' TERM; touch {_dir}/ready; while true; do sleep 0.02; done"]);
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
    [InlineData(64, new[] { "run", "k", "--ttl", "5x", "--", "true" })]
    [InlineData(64, new[] { "run", "k" })]
    [InlineData(64, new[] { "run", "k", "--ttl", "1ms", "--", "true" })]
    [InlineData(64, new[] { "inspect", ".bad" })]
    [InlineData(1, new[] { "inspect", "free-key-of-LockCtlTests" })]
    [InlineData(127, new[] { "run", "no-such-command-key", "--", "/no/such/command" })]
    public async Task Exit_codes_tell_the_outcomes_apart(int exitCode, string[] args)
    {
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, kestrel: true);
        var run = await LockCtl.RunAsync(service.BaseAddress, args);
        Assert.Equal(exitCode, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.StartsWith("lockctl: ", run.Error, StringComparison.Ordinal);
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
        await using var service = new LockServiceFactory(fixture.Redis.ConnectionString, new Dictionary<string, string?>
        {
            ["Auth:ApiKeys:0:Key"] = "client-key-0123456789",
            ["Auth:ApiKeys:0:Tenant"] = "ops",
            ["Auth:ApiKeys:1:Key"] = "admin-key-0123456789",
            ["Auth:ApiKeys:1:Tenant"] = "ops",
            ["Auth:ApiKeys:1:Role"] = "admin",
        }, kestrel: true);
        var prefix = Keys.Unique("ctl-list");
        var client = new[] { "--api-key", "client-key-0123456789" };
        var admin = new[] { "--api-key", "admin-key-0123456789" };
        foreach (var i in Enumerable.Range(0, 3))
        {
            Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["acquire", $"{prefix}-{i}", "--ttl", "30s", .. client])).ExitCode);
        }

        var listed = await LockCtl.RunAsync(service.BaseAddress, ["list", "--prefix", prefix, .. admin]);
        Assert.Equal(0, listed.ExitCode);
        var keys = System.Text.Json.JsonDocument.Parse(listed.Output).RootElement.GetProperty("locks").EnumerateArray().Select(l => l.GetProperty("key").GetString()).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{prefix}-{i}"), keys);
        Assert.DoesNotContain("token", listed.Output, StringComparison.Ordinal);

        Assert.Equal(77, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. client])).ExitCode);
        Assert.Equal(0, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. admin])).ExitCode);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["force-release", $"{prefix}-0", .. admin])).ExitCode);
        Assert.Equal(1, (await LockCtl.RunAsync(service.BaseAddress, ["inspect", $"{prefix}-0", .. client])).ExitCode);
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

    /// <summary>lockctl as a process: <c>dotnet lockctl.dll ARGS --url URL</c>, its output captured.</summary>
    private sealed class LockCtl : IDisposable
    {
        private readonly Task<string> _output;
        private readonly Task<string> _error;

        private LockCtl(Process process)
        {
            Process = process;
            _output = process.StandardOutput.ReadToEndAsync();
            _error = process.StandardError.ReadToEndAsync();
        }

        public Process Process { get; }

        public string Output => _output.Result;

        public string Error => _error.Result;

        public static LockCtl Start(Uri url, IReadOnlyList<string> args)
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lockctl.dll"));
            var separator = args.ToList().IndexOf("--");
            foreach (var argument in separator < 0 ? args : args.Take(separator))
            {
                info.ArgumentList.Add(argument);
            }

            info.ArgumentList.Add("--url");
            info.ArgumentList.Add(url.ToString());
            foreach (var argument in separator < 0 ? [] : args.Skip(separator))
            {
                info.ArgumentList.Add(argument);
            }

            return new LockCtl(Process.Start(info)!);
        }

        public static async Task<LockCtl> RunAsync(Uri url, IReadOnlyList<string> args)
        {
            var run = Start(url, args);
            await run.ExitAsync();
            return run;
        }

        public int ExitCode => Process.ExitCode;

        /// <summary>Waits (bounded) for lockctl to exit and its output to end; its exit code.</summary>
        public async Task<int> ExitAsync()
        {
            using var deadline = new CancellationTokenSource(Bound);
            try
            {
                await Process.WaitForExitAsync(deadline.Token);
                await Task.WhenAll(_output, _error).WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Process.Kill(entireProcessTree: true);
                throw new TimeoutException($"lockctl did not exit within {Bound.TotalSeconds} s");
            }

            return Process.ExitCode;
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }

            Process.Dispose();
        }
    }
}
