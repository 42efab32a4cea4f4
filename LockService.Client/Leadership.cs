using System.Text.Json;
using System.Text.Json.Serialization;

namespace LockService.Client;

/// <summary>
/// The leadership of an election won by a campaign (<c>POST /elections/{name}</c>, or renewed by proclaim): a lease
/// whose key is the election's <see cref="Name"/> and whose fencing token is the <see cref="Term"/>, with the
/// leader's <see cref="Value"/> besides. Its JSON is the contract's: <c>name</c>, <c>term</c>, no owner.
/// </summary>
public sealed record Leadership : Lease
{
    /// <summary>Creates the leadership as the service describes it.</summary>
    [JsonConstructor]
    public Leadership(string name, string token, long term, string value, long ttlMs, DateTimeOffset expiresAt, DateTimeOffset acquiredAt, long? maxHoldMs)
        : base(name, token, term, ttlMs, expiresAt, acquiredAt, maxHoldMs, null) => Value = value;

    /// <summary>The election's name.</summary>
    [JsonPropertyOrder(-3)]
    public string Name => Key;

    /// <summary>The term: the leadership's fencing token, strictly increasing per election name.</summary>
    [JsonPropertyOrder(-1)]
    public long Term => FencingToken;

    /// <summary>What the leader tells its followers (0-1024 characters); proclaim changes it.</summary>
    [JsonPropertyOrder(-1)]
    public string Value { get; init; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string Key { get => base.Key; init => base.Key = value; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override long FencingToken { get => base.FencingToken; init => base.FencingToken = value; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string? Owner { get => base.Owner; init => base.Owner = value; }
}

/// <summary>
/// Who leads an election, as anyone may see it (never the token): the body of <c>GET /elections/{name}</c>, of a check
/// or watch of a leadership, and of an observer's <c>leader</c> event.
/// </summary>
public sealed record LeaderInfo : LockInfo
{
    /// <summary>Creates the leader as the service describes it.</summary>
    [JsonConstructor]
    public LeaderInfo(string name, long term, string value, DateTimeOffset acquiredAt, DateTimeOffset expiresAt, long ttlMs)
        : base(name, term, null, ttlMs, expiresAt, acquiredAt, null) => Value = value;

    /// <summary>The election's name.</summary>
    [JsonPropertyOrder(-3)]
    public string Name => Key;

    /// <summary>The leader's term (its fencing token).</summary>
    [JsonPropertyOrder(-2)]
    public long Term => FencingToken;

    /// <summary>The leader's value.</summary>
    [JsonPropertyOrder(-1)]
    public string Value { get; init; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string Key { get => base.Key; init => base.Key = value; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override long FencingToken { get => base.FencingToken; init => base.FencingToken = value; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string? Owner { get => base.Owner; init => base.Owner = value; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override long? MaxHoldMs { get => base.MaxHoldMs; init => base.MaxHoldMs = value; }
}

/// <summary>
/// One event of an observer (<see cref="LockClient.ObserveAsync"/>): the election's state after a change, a leader
/// (<see cref="Leader"/>) or nobody. The first event is the state when observing began.
/// </summary>
/// <param name="Name">The election's name.</param>
/// <param name="Id">The id the service gave the state this event reports (sent back as <c>Last-Event-ID</c> on a reconnection).</param>
/// <param name="Leader">Who leads, or null when nobody does (<c>event: no-leader</c>).</param>
/// <param name="Data">The event's data as the service sent it: the leader's body, or <c>{"name"}</c>.</param>
public sealed record ElectionEvent(string Name, string? Id, LeaderInfo? Leader, JsonElement Data)
{
    /// <summary>The event's name on the wire: <c>leader</c> or <c>no-leader</c>.</summary>
    public string Kind => Leader is null ? "no-leader" : "leader";
}

/// <summary>One page of <c>GET /admin/elections</c>: the elections that have a leader; follow <see cref="Cursor"/> until it is null.</summary>
public sealed record ElectionPage(IReadOnlyList<LeaderInfo> Elections, string? Cursor);
