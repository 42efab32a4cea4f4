using System.Text.Json;
using LockService.Api.Redis;
using LockService.Core.Leases;
using LockService.Core.Locks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace LockService.Api.Observability;

/// <summary>
/// The body of <c>GET /health/ready</c>: whether Redis answers, why the instance is not ready, and what the last check
/// of Redis's own settings found. Probes only read the status code; the body is for the operator who asks why.
/// </summary>
internal static class ReadyBody
{
    public static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        var state = context.RequestServices.GetRequiredService<RedisSettingsMonitor>().State;
        var acceptEvictionRisk = context.RequestServices.GetRequiredService<IOptions<RedisOptions>>().Value.AcceptEvictionRisk;
        var redisAnswers = report.Entries.TryGetValue("redis", out var redis) && redis.Status == HealthStatus.Healthy;
        // A check that threw says so by type only: this endpoint is open to anyone, and an exception's message can
        // carry connection details.
        var reasons = report.Entries.Where(e => e.Value.Status == HealthStatus.Unhealthy)
            .Select(e => e.Value.Exception is null ? e.Value.Description : $"The {e.Key} check failed ({e.Value.Exception.GetType().Name}).")
            .ToArray();

        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString());
        json.WriteString("redis", redisAnswers ? "answers" : "does not answer");
        if (reasons.Length > 0)
        {
            json.WriteString("reason", string.Join(" ", reasons));
        }

        if (state.Last is { } last)
        {
            json.WriteString("settingsCheckedAt", last.CheckedAt);
        }
        else
        {
            json.WriteNull("settingsCheckedAt");
        }

        json.WriteBoolean("acceptEvictionRisk", acceptEvictionRisk);
        json.WriteStartArray("warnings");
        foreach (var finding in state.Last?.Findings ?? [])
        {
            json.WriteStartObject();
            json.WriteString("check", finding.Check);
            json.WriteString("node", finding.Node);
            json.WriteString("message", finding.Message);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }
}
