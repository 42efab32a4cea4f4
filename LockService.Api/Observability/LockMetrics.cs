using Prometheus;

namespace LockService.Api.Observability;

/// <summary>
/// The service's Prometheus metrics. Labels are bounded sets (operation, outcome): never a lock key or a
/// tenant, whose number has no bound.
/// </summary>
internal static class LockMetrics
{
    /// <summary>
    /// Keeps prometheus-net's adapters to the runtime's own meter and event counters only. By default they also
    /// publish ASP.NET Core's per-request meters and event sources (hosting, routing, Kestrel), which costs a
    /// share of every request's CPU; http_request_duration_seconds and lockservice_request_duration_seconds
    /// already cover requests. Exemplars are off: nothing here records trace ids. Call before the first scrape.
    /// </summary>
    public static void ConfigureAdapters()
    {
        Metrics.ConfigureMeterAdapter(options => options.InstrumentFilterPredicate = instrument => instrument.Meter.Name == "System.Runtime");
        Metrics.ConfigureEventCounterAdapter(options => options.EventSourceFilterPredicate = source => source == "System.Runtime");
        Metrics.DefaultFactory.ExemplarBehavior = ExemplarBehavior.NoExemplars();
    }

    /// <summary>Errors as problems, metrics and the request line for every request: see <see cref="RequestMiddleware"/>.</summary>
    public static IApplicationBuilder UseLockRequests(this IApplicationBuilder app) => app.UseMiddleware<RequestMiddleware>();

    public static readonly Counter Operations = Metrics.CreateCounter(
        "lockservice_operations_total",
        "Lease operations by kind (lock, semaphore, ...), operation (acquire, release, extend, inspect) and outcome.",
        new CounterConfiguration { LabelNames = ["kind", "operation", "outcome"] });

    public static readonly Histogram RequestDuration = Metrics.CreateHistogram(
        "lockservice_request_duration_seconds",
        "Time to answer a lease request, waiting included.",
        new HistogramConfiguration { LabelNames = ["kind", "operation"], Buckets = Histogram.ExponentialBuckets(0.00025, 2, 18) });

    public static readonly Histogram WaitDuration = Metrics.CreateHistogram(
        "lockservice_wait_duration_seconds",
        "Time acquires spent waiting in the server for a held lock (only those that had to wait).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 17) });

    public static readonly Gauge WaitingRequests = Metrics.CreateGauge(
        "lockservice_waiting_requests",
        "Acquire requests waiting in this instance right now.");

    public static readonly Counter RedisErrors = Metrics.CreateCounter(
        "lockservice_redis_errors_total",
        "Lock requests that failed because Redis was unreachable, slow or switching over.");

    /// <summary>Observed on each release by token and each force-release: from acquiredAt to the release, by Redis's clock.</summary>
    public static readonly Histogram HoldDuration = Holds("lockservice_hold_duration_seconds", "Time locks were held, from acquiredAt to their release or force-release.");

    public static readonly Counter ForcedReleases = Metrics.CreateCounter(
        "lockservice_forced_releases_total",
        "Locks released by an operator (DELETE /admin/locks/{key}).");

    /// <summary>Observed on each release of a semaphore permit by token and each force-release of one: from acquiredAt, by Redis's clock.</summary>
    public static readonly Histogram PermitHoldDuration = Holds(
        "lockservice_permit_hold_duration_seconds", "Time semaphore permits were held, from acquiredAt to their release or force-release.");

    public static readonly Counter PermitForcedReleases = Metrics.CreateCounter(
        "lockservice_permit_forced_releases_total",
        "Semaphore permits released by an operator (DELETE /admin/semaphores/{key}/{slot}).");

    /// <summary>Observed on each release of a read/write lease by token and each one an operator force-released: from acquiredAt, by Redis's clock.</summary>
    public static readonly Histogram RwLockHoldDuration = Holds(
        "lockservice_rwlock_hold_duration_seconds", "Time read/write leases were held, from acquiredAt to their release or force-release.");

    public static readonly Counter RwLockForcedReleases = Metrics.CreateCounter(
        "lockservice_rwlock_forced_releases_total",
        "Read/write leases released by an operator (DELETE /admin/rwlocks/{key}), one per lease.");
    /// <summary>Observed on each resign by token and each force of a leader: how long its term lasted, by Redis's clock.</summary>
    public static readonly Histogram TermDuration = Holds(
        "lockservice_term_duration_seconds", "Time elections' leaders led, from acquiredAt to their resignation or being forced out.");

    public static readonly Counter ForcedLeaders = Metrics.CreateCounter(
        "lockservice_forced_leaders_total",
        "Election leaders forced out by an operator (DELETE /admin/elections/{name}).");

    /// <summary>Set at each scrape from the instance's observers.</summary>
    public static readonly Gauge ElectionObservers = Metrics.CreateGauge(
        "lockservice_election_observers",
        "Observe streams (GET /elections/{name} with Accept: text/event-stream) open on this instance.");

    /// <summary>Set by each check of Redis's own settings: masters with that finding, 0 once it is gone.</summary>
    public static readonly Gauge RedisSettingsWarnings = Metrics.CreateGauge(
        "lockservice_redis_settings_warnings",
        "Redis masters whose settings the last check found unsafe or could not check, by check (eviction_risk, no_persistence, not_checked).",
        new GaugeConfiguration { LabelNames = ["check"] });

    /// <summary>Leases a watch or a stream saw end other than by their holder's release; every reason's series exists from the start, at 0.</summary>
    public static readonly Counter LostLeases = Metrics.CreateCounter(
        "lockservice_lost_total",
        "Leases that a watch or a stream saw end other than by their holder's release, by reason (forced, expired, unavailable).",
        new CounterConfiguration { LabelNames = ["reason"] });

    private static readonly Counter.Child LostForced = LostLeases.WithLabels("forced");
    private static readonly Counter.Child LostExpired = LostLeases.WithLabels("expired");
    private static readonly Counter.Child LostUnavailable = LostLeases.WithLabels("unavailable");

    /// <summary>Counts a lease a watch or stream saw lost; a release by its holder (or a token never known) is no loss.</summary>
    public static void Lost(LockService.Core.Leases.LeaseEnd reason)
    {
        switch (reason)
        {
            case LockService.Core.Leases.LeaseEnd.Forced:
                LostForced.Inc();
                break;
            case LockService.Core.Leases.LeaseEnd.Expired:
                LostExpired.Inc();
                break;
            case LockService.Core.Leases.LeaseEnd.Unavailable:
                LostUnavailable.Inc();
                break;
        }
    }

    // Hold times: from a millisecond to about 75 hours, by factors of 4.
    private static Histogram Holds(string name, string help) =>
        Metrics.CreateHistogram(name, help, new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 4, 14) });
}
