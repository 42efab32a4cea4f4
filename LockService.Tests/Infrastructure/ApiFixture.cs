using LockService.Core.Leases;
using LockService.Core.Locks;
using LockService.Core.Semaphores;

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
    }

    public virtual async Task DisposeAsync() => await Factory.DisposeAsync();
}

/// <summary>The engines alone, as a .NET program would use them, over the shared Redis.</summary>
public sealed class EngineFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public TestLocks Engine { get; private set; } = null!;

    public TestSemaphores Semaphores { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Engine = TestLocks.Create(Redis.Redis, new LeaseOptions(), new RedisOptions { ConnectionString = Redis.ConnectionString });
        Semaphores = NewSemaphoreEngine();
    }

    /// <summary>Another semaphore engine over the same Redis: another instance of the service, as far as waiting goes.</summary>
    public TestSemaphores NewSemaphoreEngine(LeaseOptions? locks = null) =>
        TestSemaphores.Create(Redis.Redis, new SemaphoreOptions(), locks ?? new LeaseOptions(), new RedisOptions { ConnectionString = Redis.ConnectionString });

    public Task DisposeAsync()
    {
        Engine.Dispose();
        Semaphores.Dispose();
        return Task.CompletedTask;
    }
}
