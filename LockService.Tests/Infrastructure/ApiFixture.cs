using LockService.Core.Locks;

namespace LockService.Tests.Infrastructure;

/// <summary>One service in the test server over the shared Redis, for a test class.</summary>
public class ApiFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public LockServiceFactory Factory { get; private set; } = null!;

    public LockClient Client { get; private set; } = null!;

    protected virtual IDictionary<string, string?> Settings => new Dictionary<string, string?>();

    public virtual async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Factory = new LockServiceFactory(Redis.ConnectionString, Settings);
        Client = new LockClient(Factory.CreateClient());

        // On a loaded machine the service may still be connecting to Redis when the first test runs: its
        // answer then is a correct 503, but not what the test is about. Start the tests once it is ready.
        await RedisServer.WaitUntilAsync(
            async () => (await Client.SendAsync(HttpMethod.Get, "/health/ready")).Status == System.Net.HttpStatusCode.OK,
            TimeSpan.FromSeconds(20),
            "the service to be ready");
    }

    public virtual async Task DisposeAsync() => await Factory.DisposeAsync();
}

/// <summary>The engine alone, as a .NET program would use it, over the shared Redis.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public LockEngine Engine { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Engine = new LockEngine(Redis.Redis, new LockOptions(), new RedisOptions { ConnectionString = Redis.ConnectionString });
    }

    public Task DisposeAsync()
    {
        Engine.Dispose();
        return Task.CompletedTask;
    }
}
