using StackExchange.Redis;
using Testcontainers.Redis;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// The one Redis of a test run, shared by every test (each test uses keys of its own, so they run in
/// parallel without flushing). In order: LOCKSERVICE_TEST_REDIS if set; else a redis-server from PATH
/// started on a free port; else a Testcontainers Redis for developers with Docker.
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static string? _shared;
    private static RedisServer? _server;
    private static RedisContainer? _container;
    private static ConnectionMultiplexer? _connection;

    public string ConnectionString => _shared!;

    /// <summary>A direct connection for tests that look at Redis itself (keys, TTLs, command counts).</summary>
    public IConnectionMultiplexer Redis => _connection!;

    public async Task InitializeAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_shared is null)
            {
                _shared = await StartAsync();
                var options = ConfigurationOptions.Parse(_shared);
                options.AllowAdmin = true;
                _connection = await ConnectionMultiplexer.ConnectAsync(options);
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private static async Task<string> StartAsync()
    {
        var configured = Environment.GetEnvironmentVariable("LOCKSERVICE_TEST_REDIS");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured;
        }

        if (RedisServer.Available)
        {
            _server = await RedisServer.StartNewAsync();
            return _server.ConnectionString;
        }

        try
        {
            _container = new RedisBuilder("redis:7.4").Build();
            await _container.StartAsync();
            AppDomain.CurrentDomain.ProcessExit += (_, _) => _container.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return _container.GetConnectionString();
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                "No Redis for the tests: set LOCKSERVICE_TEST_REDIS to a connection string, install redis-server " +
                "(apt-get install redis-server), or run Docker for Testcontainers. Testcontainers said: " + ex.Message,
                ex);
        }
    }
}
