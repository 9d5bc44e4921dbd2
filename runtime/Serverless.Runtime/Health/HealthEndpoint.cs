using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Serverless.Runtime.Storage;

namespace Serverless.Runtime.Health;

/// <summary>
/// GET /api/health: every registered ASP.NET Core health check (the host registers "blob" and "queue";
/// modules add theirs with <c>services.AddHealthChecks().AddCheck(...)</c>). 200 when all are healthy, else 503.
/// </summary>
internal static class HealthEndpoint
{
    public static void MapFunctionsHealth(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet("api/health", async (HealthCheckService health, HttpContext http) =>
        {
            var report = await health.CheckHealthAsync(http.RequestAborted).ConfigureAwait(false);
            var body = new HealthResponse(report.Status.ToString(), report.Entries.ToDictionary(
                e => e.Key,
                e => new HealthEntry(e.Value.Status.ToString(), e.Value.Description, e.Value.Data.Count == 0 ? null : e.Value.Data.ToDictionary(d => d.Key, d => d.Value),
                    Math.Round(e.Value.Duration.TotalMilliseconds, 1))));
            return Results.Json(body, statusCode: report.Status == HealthStatus.Healthy ? 200 : 503);
        }).WithName("health");

    private sealed record HealthResponse(string Status, Dictionary<string, HealthEntry> Checks);

    private sealed record HealthEntry(string Status, string? Description, Dictionary<string, object>? Data, double DurationMs);
}

/// <summary>Writes, reads back and deletes a probe blob.</summary>
internal sealed class BlobHealthCheck(IBlobStoreProvider blobs) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["backend"] = blobs.BackendName };
        try
        {
            var store = blobs.GetContainer(Timers.TimerListener.StatusContainer);
            var name = $"health/probe-{Environment.ProcessId}-{Guid.NewGuid():N}";
            await store.PutAsync(name, new MemoryStream("ok"u8.ToArray()), BlobCondition.MustNotExist, cancellationToken).ConfigureAwait(false);
            await using (var read = await store.GetAsync(name, cancellationToken).ConfigureAwait(false))
                if (read is null) return HealthCheckResult.Unhealthy("probe blob vanished after write", data: data);
            await store.DeleteAsync(name, BlobCondition.None, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"{blobs.BackendName} blob store reachable", data);
        }
        catch (Exception e)
        {
            return HealthCheckResult.Unhealthy($"{blobs.BackendName} blob store failed: {e.GetType().Name}: {e.Message}", data: data);
        }
    }
}

/// <summary>Counts a probe queue (creating it on first use).</summary>
internal sealed class QueueHealthCheck(IQueueStore queues, StorageBackendName backend) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["backend"] = backend.Queue };
        try
        {
            await queues.CreateQueueAsync("serverless-health", cancellationToken).ConfigureAwait(false);
            var count = await queues.GetApproximateCountAsync("serverless-health", cancellationToken).ConfigureAwait(false);
            Debug.Assert(count >= 0);
            return HealthCheckResult.Healthy($"{backend.Queue} queue store reachable", data);
        }
        catch (Exception e)
        {
            return HealthCheckResult.Unhealthy($"{backend.Queue} queue store failed: {e.GetType().Name}: {e.Message}", data: data);
        }
    }
}

/// <summary>Which backend each store uses, for reports.</summary>
internal sealed record StorageBackendName(string Blob, string Queue);
