using Xunit.Abstractions;
using Xunit.Sdk;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// Why a test that starts Redis processes of its own is skipped. xunit 2 has no skip at run time, so the attributes
/// below decide when the tests are discovered: on a machine with only Docker the shared Redis still comes from
/// Testcontainers, and these tests say why they did not run instead of failing.
/// </summary>
internal static class NeedsRedisServer
{
    public const string Reason = "needs redis-server on PATH (apt-get install redis-server): this test starts Redis processes of its own";

    public static string? SkipReason => RedisServer.Available ? null : Reason;
}

/// <summary>A fact that starts redis-server processes of its own (<see cref="RedisServer.StartNewAsync"/> or a fixture that does).</summary>
public sealed class RedisServerFactAttribute : FactAttribute
{
    public RedisServerFactAttribute() => Skip = NeedsRedisServer.SkipReason;
}

/// <summary>A theory that starts redis-server processes of its own.</summary>
public sealed class RedisServerTheoryAttribute : TheoryAttribute
{
    public RedisServerTheoryAttribute() => Skip = NeedsRedisServer.SkipReason;
}

/// <summary>
/// Marks a test class whose Redis topology the tests start from redis-server (a Cluster, a Sentinel): the
/// <see cref="TopologyFactAttribute"/> tests it inherits are skipped with the reason when redis-server is missing.
/// </summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class StartsRedisServerAttribute : Attribute;

/// <summary>
/// A fact of a base class that each Redis topology's test class runs (<see cref="Waiting.WaitingBehaviour"/>): it needs
/// redis-server only in the classes marked <see cref="StartsRedisServerAttribute"/>, which an attribute on the method
/// cannot know, so its discoverer looks at the class the test runs in.
/// </summary>
[XunitTestCaseDiscoverer("LockService.Tests.Infrastructure.TopologyFactDiscoverer", "LockService.Tests")]
public sealed class TopologyFactAttribute : FactAttribute;

/// <summary>The theory counterpart of <see cref="TopologyFactAttribute"/>.</summary>
[XunitTestCaseDiscoverer("LockService.Tests.Infrastructure.TopologyTheoryDiscoverer", "LockService.Tests")]
public sealed class TopologyTheoryAttribute : TheoryAttribute;

public sealed class TopologyFactDiscoverer(IMessageSink diagnosticMessageSink) : FactDiscoverer(diagnosticMessageSink)
{
    public override IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute) =>
        TopologySkip.For(testMethod) is { } reason
            ? [TopologySkip.Case(DiagnosticMessageSink, discoveryOptions, testMethod, reason)]
            : base.Discover(discoveryOptions, testMethod, factAttribute);
}

public sealed class TopologyTheoryDiscoverer(IMessageSink diagnosticMessageSink) : TheoryDiscoverer(diagnosticMessageSink)
{
    // One skipped case for the whole theory, as xunit reports a theory whose attribute sets Skip.
    public override IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo theoryAttribute) =>
        TopologySkip.For(testMethod) is { } reason
            ? [TopologySkip.Case(DiagnosticMessageSink, discoveryOptions, testMethod, reason)]
            : base.Discover(discoveryOptions, testMethod, theoryAttribute);
}

internal static class TopologySkip
{
    public static string? For(ITestMethod testMethod) =>
        testMethod.TestClass.Class.GetCustomAttributes(typeof(StartsRedisServerAttribute)).Any() ? NeedsRedisServer.SkipReason : null;

    public static IXunitTestCase Case(IMessageSink sink, ITestFrameworkDiscoveryOptions options, ITestMethod testMethod, string reason) =>
        new XunitSkippedDataRowTestCase(sink, options.MethodDisplayOrDefault(), options.MethodDisplayOptionsOrDefault(), testMethod, reason);
}

/// <summary>
/// The base of tests every Redis topology runs (<see cref="Waiting.WaitingBehaviour"/>, <see cref="Semaphores.SemaphoreBehaviour"/>):
/// each topology's test class says how to reach its service and its Redis.
/// </summary>
public abstract class TopologyBehaviour
{
    protected abstract LockClient Client { get; }

    /// <summary>The Redis connection string further service instances are started with.</summary>
    protected abstract string RedisConnectionString { get; }
}
