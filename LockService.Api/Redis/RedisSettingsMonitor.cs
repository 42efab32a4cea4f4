using LockService.Api.Observability;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace LockService.Api.Redis;

/// <summary>What the last check of Redis's settings found, and whether it keeps this instance from being ready.</summary>
/// <param name="Last">The last check that reached Redis; null until one has.</param>
/// <param name="EvictionBlocks">True while the start-up check's eviction risk (not accepted) has not been fixed.</param>
/// <param name="VersionBlocks">True while the start-up check's too old Redis has not been upgraded.</param>
/// <param name="NotReadyReason">Why the instance is not ready; set while either of the above holds.</param>
internal sealed record RedisSettingsState(RedisSettingsReport? Last, bool EvictionBlocks, bool VersionBlocks, string? NotReadyReason)
{
    public static readonly RedisSettingsState Unchecked = new(null, false, false, null);
}

/// <summary>
/// Checks Redis's own settings at start and every <see cref="RedisOptions.SettingsCheckMs"/> after, on its own timer,
/// never on a lock request's path. The first check that reaches Redis decides readiness: an eviction risk then,
/// unless accepted, or a Redis too old for the scripts keeps the instance not ready until fixed. Found later, either
/// is a warning only, because every instance sees the same Redis and a readiness flip would take them all out at once.
/// </summary>
internal sealed partial class RedisSettingsMonitor(
    IServiceProvider services, IOptions<RedisOptions> options, ILogger<RedisSettingsMonitor> logger) : BackgroundService
{
    // Until a check has reached Redis (down at start), try again soon: readiness waits on that first answer.
    private static readonly TimeSpan FirstCheckRetry = TimeSpan.FromSeconds(1);
    private readonly RedisOptions _options = options.Value;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private HashSet<RedisSettingsFinding> _logged = [];
    private volatile RedisSettingsState _state = RedisSettingsState.Unchecked;

    public RedisSettingsState State => _state;

    /// <summary>
    /// The state for a readiness probe. Until a check has reached Redis it runs one now, so that the first ready
    /// answer after Redis comes up already carries the start-up verdict instead of a 200 that later turns into a 503.
    /// </summary>
    public async Task<RedisSettingsState> ForReadinessAsync(CancellationToken cancellationToken)
    {
        if (_state.Last is null)
        {
            await CheckAsync(onlyIfUnchecked: true, cancellationToken);
        }

        return _state;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromMilliseconds(_options.SettingsCheckMs);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CheckAsync(onlyIfUnchecked: false, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var wait = _state.Last is null && interval > FirstCheckRetry ? FirstCheckRetry : interval;
            try
            {
                await Task.Delay(wait, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task CheckAsync(bool onlyIfUnchecked, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (onlyIfUnchecked && _state.Last is not null)
            {
                return;
            }

            var multiplexer = services.GetRequiredService<IConnectionMultiplexer>();
            var report = await RedisSettings.CheckAsync(multiplexer, TimeSpan.FromMilliseconds(_options.TimeoutMs), TimeProvider.System);
            if (report is not null)
            {
                Apply(report);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A bug in the check must neither end the checks nor flip readiness; the log names the exception's type
            // only, as its message may quote Redis's reply.
            LogCheckFailed(logger, ex.GetType().Name);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Takes a check's report as the state; internal so that a too old Redis, which no test can start, is tested here.</summary>
    internal void Apply(RedisSettingsReport report)
    {
        var previous = _state;
        var startUp = previous.Last is null;
        var evictionBlocks = report.EvictionRisk && (startUp ? !_options.AcceptEvictionRisk : previous.EvictionBlocks);
        var versionBlocks = report.VersionTooOld && (startUp || previous.VersionBlocks);
        if (previous.EvictionBlocks && !evictionBlocks)
        {
            LogEvictionRiskFixed(logger);
        }

        if (previous.VersionBlocks && !versionBlocks)
        {
            LogVersionFixed(logger);
        }

        // Rebuilt at each check while it stands, so the reason names the settings as they are now.
        var reasons = new List<string>();
        if (evictionBlocks)
        {
            reasons.Add($"Redis can evict lock keys: {Details(report, RedisSettingsCheck.EvictionRisk)} Not ready until this is fixed or Redis:AcceptEvictionRisk is true.");
        }

        if (versionBlocks)
        {
            reasons.Add($"Redis is too old for the lock scripts: {Details(report, RedisSettingsCheck.VersionTooOld)} Not ready until Redis is upgraded.");
        }

        LogChanges(report, evictionBlocks, versionBlocks, startUp);
        foreach (var check in RedisSettingsCheck.All)
        {
            LockMetrics.RedisSettingsWarnings.WithLabels(check).Set(report.Findings.Count(f => f.Check == check));
        }

        _state = new RedisSettingsState(report, evictionBlocks, versionBlocks, reasons.Count == 0 ? null : string.Join(" ", reasons));
    }

    private static string Details(RedisSettingsReport report, string check) =>
        string.Join(" ", report.Findings.Where(f => f.Check == check).Select(f => $"{f.Node}: {f.Message}"));

    /// <summary>Logs each finding once when it appears and once when it goes, not on every check.</summary>
    private void LogChanges(RedisSettingsReport report, bool evictionBlocks, bool versionBlocks, bool startUp)
    {
        var current = report.Findings.ToHashSet();
        foreach (var finding in current.Where(f => !_logged.Contains(f)))
        {
            if (finding.Check == RedisSettingsCheck.EvictionRisk && evictionBlocks)
            {
                LogEvictionRiskNotReady(logger, finding.Node, finding.Message);
            }
            else if (finding.Check == RedisSettingsCheck.VersionTooOld && versionBlocks)
            {
                LogVersionNotReady(logger, finding.Node, finding.Message);
            }
            else if (finding.Check == RedisSettingsCheck.EvictionRisk && startUp)
            {
                LogEvictionRiskAccepted(logger, finding.Node, finding.Message);
            }
            else
            {
                LogSettingsWarning(logger, finding.Check, finding.Node, finding.Message);
            }
        }

        foreach (var finding in _logged.Where(f => !current.Contains(f)))
        {
            LogSettingsWarningCleared(logger, finding.Check, finding.Node);
        }

        _logged = current;
    }

    public override void Dispose()
    {
        _gate.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1100, EventName = "RedisEvictionRiskNotReady", Level = LogLevel.Error,
        Message = "Not ready: Redis {Node} can evict lock keys. {Detail} Or set Redis:AcceptEvictionRisk=true to run anyway")]
    private static partial void LogEvictionRiskNotReady(ILogger logger, string node, string detail);

    [LoggerMessage(EventId = 1101, EventName = "RedisEvictionRiskAccepted", Level = LogLevel.Warning,
        Message = "Redis {Node} can evict lock keys; running anyway because Redis:AcceptEvictionRisk is true. {Detail}")]
    private static partial void LogEvictionRiskAccepted(ILogger logger, string node, string detail);

    [LoggerMessage(EventId = 1102, EventName = "RedisSettingsWarning", Level = LogLevel.Warning,
        Message = "Redis settings warning {Check} on {Node}: {Detail}")]
    private static partial void LogSettingsWarning(ILogger logger, string check, string node, string detail);

    [LoggerMessage(EventId = 1103, EventName = "RedisSettingsWarningCleared", Level = LogLevel.Information,
        Message = "Redis settings warning {Check} on {Node} is gone")]
    private static partial void LogSettingsWarningCleared(ILogger logger, string check, string node);

    [LoggerMessage(EventId = 1104, EventName = "RedisEvictionRiskFixed", Level = LogLevel.Information,
        Message = "Redis can no longer evict lock keys; ready")]
    private static partial void LogEvictionRiskFixed(ILogger logger);

    [LoggerMessage(EventId = 1106, EventName = "RedisVersionNotReady", Level = LogLevel.Error,
        Message = "Not ready: Redis {Node} is too old for the lock scripts. {Detail}")]
    private static partial void LogVersionNotReady(ILogger logger, string node, string detail);

    [LoggerMessage(EventId = 1107, EventName = "RedisVersionFixed", Level = LogLevel.Information,
        Message = "Redis is now new enough for the lock scripts")]
    private static partial void LogVersionFixed(ILogger logger);

    [LoggerMessage(EventId = 1105, EventName = "RedisSettingsCheckFailed", Level = LogLevel.Error,
        Message = "Checking Redis's settings failed unexpectedly ({ExceptionType}); trying again at the next interval")]
    private static partial void LogCheckFailed(ILogger logger, string exceptionType);
}
