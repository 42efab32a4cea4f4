using System.Text.Json;
using System.Text.Json.Serialization;

namespace LockService.Client;

/// <summary>The contract's bodies, serialized without reflection so that trimmed and single-file programs can use them.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(Lease))]
[JsonSerializable(typeof(LockInfo))]
[JsonSerializable(typeof(LockPage))]
[JsonSerializable(typeof(Permit))]
[JsonSerializable(typeof(PermitInfo))]
[JsonSerializable(typeof(SemaphoreInfo))]
[JsonSerializable(typeof(SemaphorePage))]
[JsonSerializable(typeof(RwLease))]
[JsonSerializable(typeof(RwLeaseInfo))]
[JsonSerializable(typeof(RwLockInfo))]
[JsonSerializable(typeof(RwLockPage))]
[JsonSerializable(typeof(Leadership))]
[JsonSerializable(typeof(LeaderInfo))]
[JsonSerializable(typeof(ElectionPage))]
[JsonSerializable(typeof(LeaseEndReason))]
public sealed partial class ClientJson : JsonSerializerContext;
