using LockService.Bench.Http;

namespace LockService.Bench.Service;

/// <summary>What one instance can do beyond acquire and release (the yardstick does neither).</summary>
internal sealed record ServiceInfo(LockUrls Urls, bool CanInspect, bool HasWaitingGauge);

internal static class ServiceProbe
{
    /// <summary>
    /// Acquires, inspects and releases one key of the run, then reads /metrics: a service that cannot do
    /// the first and the last stops the run before it starts (exit code 2) with a message that says why.
    /// </summary>
    public static async Task<ServiceInfo> ProbeAsync(LockClient client, LockUrls urls, string runPrefix, TimeSpan timeout)
    {
        using var caller = new Caller(client.Http);
        string key = runPrefix + "probe";
        var acquireUri = urls.Acquire(key, LockUrls.AcquireQuery(30_000, 0));
        var acquire = await caller.SendAsync(HttpMethod.Post, acquireUri, timeout, readBody: true, CancellationToken.None);
        switch (acquire.Status)
        {
            case 201:
                break;
            case Outcome.Transport:
                throw new SetupException($"service unreachable at {urls.BaseUrl}: {LockClient.LastConnectError ?? "connection failed"}");
            case Outcome.Timeout:
                throw new SetupException($"service at {urls.BaseUrl} did not answer within {timeout.TotalSeconds} s");
            case 401:
                throw new SetupException($"POST {acquireUri} answered 401: give the API key with --api-key");
            default:
                throw new SetupException($"POST {acquireUri} answered {Outcome.Name(acquire.Status)}, expected 201 with a token");
        }

        string token = new(caller.Token);
        var inspect = await caller.SendAsync(HttpMethod.Get, urls.Inspect(key), timeout, readBody: false, CancellationToken.None);
        var release = await caller.SendAsync(HttpMethod.Delete, urls.Release(key, token), timeout, readBody: false, CancellationToken.None);
        if (release.Status != 204)
        {
            throw new SetupException($"DELETE {urls.BaseUrl}locks/{key}/<token> answered {Outcome.Name(release.Status)}, expected 204");
        }

        double? waiting = await ServiceMetrics.ReadWaitingAsync(client.Http, urls.Metrics, timeout);
        return new ServiceInfo(urls, inspect.Status == 200, waiting is not null);
    }
}
