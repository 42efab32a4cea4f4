using StackExchange.Redis;

namespace LockService.Core.Leases;

/// <summary>
/// One kind of lease as the <see cref="LeaseEngine"/> sees it: its Redis keys, its scripts and the typed decoding of
/// their replies. The engine does what every kind shares (acquire and wait, watch, keep a stream's lease, release what a
/// gone client obtained, list); a store does the one-script operations of its kind.
/// <para>Adding a kind (the checklist):</para>
/// <list type="number">
/// <item>Its request: a record that implements <see cref="ILeaseRequest{TSelf}"/> (the <see cref="AcquireRequest"/> terms
/// plus what the kind adds) and validates itself; its lease (<see cref="IKeptLease"/>) and its info (<see cref="ILeaseInfo"/>).</item>
/// <item>Its store: a subclass of this one in its own folder, with its scripts as <c>const string</c>s (KEYS, ARGV and
/// replies in a comment above each), one decoder per script into a record with named fields, and its key prefix
/// option registered in <see cref="KeySpaces"/>.</item>
/// <item>Its wake policy: a <see cref="WakePolicy"/>, or the base one when a release frees the place for one waiter; and,
/// when a waiting request must hold something in Redis (a read/write lock's waiting writer), <see cref="ClaimWhileWaiting"/>.</item>
/// <item>Its routes: in the API, one line registering the store and its key prefix (<c>AddLeaseKind</c> in RedisSetup),
/// a route table shaped as the lock's (<c>LockEndpoints</c>: <c>LeaseRoutes</c>, <c>LeaseRequests</c>, <c>LeaseStream</c>,
/// <c>WithOperation(kind, operation)</c> and the handler's typed outcome for metrics), its problems, and a listing
/// (<c>AddListing</c>) for operators.</item>
/// <item>Its tests: the scripts' replies, the kind's rules, and the engine's guarantees (wake-ups, reasons) through the API.</item>
/// </list>
/// </summary>
/// <typeparam name="TRequest">The kind's acquire request.</typeparam>
/// <typeparam name="TLease">A held lease as its holder sees it (with its token).</typeparam>
/// <typeparam name="TInfo">A held lease as anyone may see it (never its token).</typeparam>
/// <typeparam name="TBusy">What a refused acquire learns of the leases in its way.</typeparam>
public abstract class LeaseStore<TRequest, TLease, TInfo, TBusy> : ILeaseReleaser
    where TRequest : ILeaseRequest<TRequest>
    where TLease : class, IKeptLease
    where TInfo : class, ILeaseInfo
{
    private protected LeaseStore(LeaseEngine engine, LeaseKind kind, string keyPrefix, WakePolicy wake)
    {
        Engine = engine;
        Kind = kind;
        KeyPrefix = keyPrefix;
        Wake = wake;
    }

    /// <summary>Which kind this store keeps.</summary>
    public LeaseKind Kind { get; }

    /// <summary>The prefix of every Redis key of this kind (the kind's own key space).</summary>
    public string KeyPrefix { get; }

    /// <summary>The limits every kind is held to.</summary>
    public LeaseOptions Limits => Engine.Limits;

    internal WakePolicy Wake { get; }

    private protected LeaseEngine Engine { get; }

    private protected RedisScriptRunner Redis => Engine.Redis;

    /// <summary>The lease of <paramref name="name"/> and its main Redis key.</summary>
    /// <exception cref="ArgumentException">The name is not a valid name.</exception>
    public LeaseRef RefOf(LeaseName name) => new(name, LeaseKeys.KeyOf(KeyPrefix, name));

    /// <summary>What breaks the kind's rules in <paramref name="request"/> (with a stream's, for a lease a stream will hold), or null when it is valid.</summary>
    public abstract RequestErrors? Validate(TRequest request, bool stream = false);

    /// <summary>Releases the lease if <paramref name="token"/> holds it (its place goes to whom the kind's policy says); else says why it does not.</summary>
    public Task<ReleaseResult> ReleaseAsync(LeaseName name, string token) => ReleaseAsync(RefOf(name), token);

    /// <summary>
    /// Sets the lease's remaining TTL to <see cref="ExtendRequest.TtlMs"/> from now (default: the TTL it was acquired with),
    /// cut to what is left of its hold cap; or says why the token no longer holds it. An expired lease is never brought back.
    /// </summary>
    /// <exception cref="ArgumentException">The request breaks <see cref="LeaseRules"/>.</exception>
    public Task<ExtendResult<TLease>> ExtendAsync(LeaseName name, string token, ExtendRequest request) =>
        request.Validate(Limits) is { } errors ? throw errors.ToException() : ExtendAsync(RefOf(name), token, request);

    /// <summary>The lease while <paramref name="token"/> holds it, else why it does not.</summary>
    public Task<CheckResult<TInfo>> CheckAsync(LeaseName name, string token) => CheckAsync(RefOf(name), token);

    /// <inheritdoc cref="ReleaseAsync(LeaseName, string)"/>
    public abstract Task<ReleaseResult> ReleaseAsync(LeaseRef lease, string token);

    internal abstract Task<ExtendResult<TLease>> ExtendAsync(LeaseRef lease, string token, ExtendRequest request);

    internal abstract Task<CheckResult<TInfo>> CheckAsync(LeaseRef lease, string token);

    /// <summary>
    /// Sends one attempt to take the lease (the kind's acquire script, as a write). Not an async method, and decoded
    /// apart (<see cref="DecodeAcquire"/>), so that an acquire costs the engine's frame and the script call's, no more.
    /// </summary>
    internal abstract Task<RedisScriptRunner.Written> SendAcquireAsync(LeaseRef lease, string token, TRequest request);

    /// <summary>
    /// What the acquire script answered. A grant is not confirmed yet: the engine confirms it on replicas
    /// (<see cref="LeaseAttempt{TLease, TBusy}.Written"/>) and releases it when that fails.
    /// </summary>
    internal abstract LeaseAttempt<TLease, TBusy> DecodeAcquire(LeaseRef lease, string token, TRequest request, RedisScriptRunner.Written written);

    /// <summary>A release sent without the call's time bound, for a lease whose acquire the caller was told failed.</summary>
    internal abstract Task SendReleaseAsync(LeaseRef lease, string token);

    /// <summary>
    /// What the kind keeps in Redis while a request of it waits, or null (the default: nothing). The engine asks for it once
    /// the request's first attempt found the lease taken and it is going to wait, and ends it when the request ends, with the
    /// lease or without, however it ends (its wait ran out, its client went away, an error).
    /// </summary>
    internal virtual IWaitClaim? ClaimWhileWaiting(LeaseRef lease, string token, TRequest request) => null;

    Task ILeaseReleaser.SendReleaseAsync(LeaseRef lease, string token) => SendReleaseAsync(lease, token);

    Task<ReleaseResult> ILeaseReleaser.ReleaseAsync(LeaseName name, string token) => ReleaseAsync(name, token);

    /// <summary>The pub/sub channel the kind's scripts announce on, for the lease with main key <paramref name="key"/>.</summary>
    internal abstract string ChannelOf(string key);

    /// <summary>A lease's owner from a script's reply: empty or absent is none.</summary>
    private protected static string? OwnerOf(RedisResult value)
    {
        var owner = (string?)value;
        return string.IsNullOrEmpty(owner) ? null : owner;
    }
}

/// <summary>Lists of a kind's held leases (<see cref="LeaseEngine.ListAsync{TState}"/>): what one name's state is.</summary>
/// <typeparam name="TState">The state of one name as inspection shows it (never a token).</typeparam>
public interface IListedLeases<TState>
    where TState : class
{
    /// <summary>The prefix of every Redis key of this kind.</summary>
    string KeyPrefix { get; }

    /// <summary>The state of <paramref name="name"/>, or null when nothing of it is held.</summary>
    Task<TState?> InspectAsync(LeaseName name);
}

/// <summary>
/// What a kind keeps in Redis while one of its requests waits (a read/write lock's waiting writer's mark, which holds new
/// readers back): started by <see cref="LeaseStore{TRequest, TLease, TInfo, TBusy}.ClaimWhileWaiting"/>, ended by the engine.
/// </summary>
internal interface IWaitClaim
{
    /// <summary>The request ended, holding the lease (<paramref name="acquired"/>) or not: the claim goes.</summary>
    ValueTask EndAsync(bool acquired);
}

/// <summary>What an acquire attempt came to, as the kind's script answered.</summary>
internal enum AttemptOutcome
{
    Granted,
    Replayed,
    Taken,
}

/// <summary>
/// One attempt to take a lease, decoded from the kind's script.
/// </summary>
/// <param name="Outcome">Granted, replayed (an Idempotency-Key matched) or taken by others.</param>
/// <param name="Lease">The lease when granted or replayed.</param>
/// <param name="RetryAfterMs">When taken: when the lease in the way is expected to end, in ms from now.</param>
/// <param name="Busy">When taken: what the kind learned of those in the way.</param>
/// <param name="NextLookMs">When granted: when the queue's head must look again even if nothing is announced (an expiry publishes nothing); -1: no need.</param>
/// <param name="StateAfter">When granted: the kind's state after the grant for its wake policy (a semaphore's count); -1: none.</param>
/// <param name="Written">Where the grant was written, to confirm it on replicas.</param>
internal readonly record struct LeaseAttempt<TLease, TBusy>(
    AttemptOutcome Outcome, TLease? Lease, long RetryAfterMs, TBusy Busy, long NextLookMs, long StateAfter, RedisScriptRunner.Written Written)
    where TLease : class
{
    public static LeaseAttempt<TLease, TBusy> Granted(TLease lease, long nextLookMs, long stateAfter, RedisScriptRunner.Written written) =>
        new(AttemptOutcome.Granted, lease, 0, default!, nextLookMs, stateAfter, written);

    public static LeaseAttempt<TLease, TBusy> Replayed(TLease lease, long nextLookMs) =>
        new(AttemptOutcome.Replayed, lease, 0, default!, nextLookMs, -1, default);

    public static LeaseAttempt<TLease, TBusy> Taken(long retryAfterMs, TBusy busy) =>
        new(AttemptOutcome.Taken, null, retryAfterMs, busy, -1, -1, default);
}
