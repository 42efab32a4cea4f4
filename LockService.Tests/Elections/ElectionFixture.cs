using LockService.Core.Elections;
using LockService.Core.Locks;
using LockService.Tests.Infrastructure;
using StackExchange.Redis;

namespace LockService.Tests.Elections;

/// <summary>An election store over the shared Redis, as one instance of the service has it.</summary>
public sealed class ElectionFixture : IAsyncLifetime
{
    public RedisFixture Redis { get; } = new();

    public ElectionStore Store { get; private set; } = null!;

    public IDatabase Db => Redis.Redis.GetDatabase();

    public async Task InitializeAsync()
    {
        await Redis.InitializeAsync();
        Store = NewStore(Redis.Redis);
    }

    public ElectionStore NewStore(IConnectionMultiplexer multiplexer) =>
        new(multiplexer, new ElectionOptions(), new LockOptions(), new RedisOptions { ConnectionString = Redis.ConnectionString });

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>An election name no other test uses.</summary>
    public static LockName NewName(string test) => LockName.Of(Keys.Unique(test));
}
