using Microsoft.AspNetCore.Authorization;
using Microsoft.DurableTask.Client;

namespace Serverless.Functions.Hosting;

/// <summary>
/// <c>GET /api/health</c>: probes the blob store (write, read back, delete), the queue store and the durable
/// task hub through the client binding; 200 when all answer, else 503 with which one failed and why (the
/// exception's type and message: stores name no secret in theirs).
/// </summary>
public sealed class HealthFunctions(IBlobStoreProvider blobs, IQueueStore queues, AppStorageBackends backends)
{
    private const string ProbeContainer = "health";
    private const string ProbeQueue = "serverless-health";

    public sealed record HealthCheck(string Status, string Backend, string? Error);

    public sealed record HealthReport(string Status, Dictionary<string, HealthCheck> Checks);

    [Function("Health"), AllowAnonymous]
    public async Task<IResult> Run([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "health")] HttpRequest request,
        [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        var checks = new Dictionary<string, HealthCheck>(StringComparer.Ordinal)
        {
            ["blob"] = await ProbeAsync(backends.Blob, async () =>
            {
                var store = blobs.GetContainer(ProbeContainer);
                var name = $"probe-{Environment.ProcessId}-{Guid.NewGuid():N}";
                await store.PutAsync(name, new MemoryStream("ok"u8.ToArray()), BlobCondition.MustNotExist, cancellationToken);
                await using (var read = await store.GetAsync(name, cancellationToken))
                    if (read is null) throw new InvalidOperationException("the probe blob vanished after its write");
                await store.DeleteAsync(name, BlobCondition.None, cancellationToken);
            }),
            ["queue"] = await ProbeAsync(backends.Queue, async () =>
            {
                await queues.CreateQueueAsync(ProbeQueue, cancellationToken);
                await queues.GetApproximateCountAsync(ProbeQueue, cancellationToken);
            }),
            ["durable"] = await ProbeAsync(durable.Name, async () =>
                await durable.GetInstanceAsync("health-probe-" + Guid.NewGuid().ToString("N"), getInputsAndOutputs: false, cancellationToken)),
        };
        var healthy = checks.Values.All(c => c.Status == "Healthy");
        return Results.Json(new HealthReport(healthy ? "Healthy" : "Unhealthy", checks), statusCode: healthy ? 200 : 503);
    }

    private static async Task<HealthCheck> ProbeAsync(string backend, Func<Task> probe)
    {
        try
        {
            await probe();
            return new HealthCheck("Healthy", backend, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new HealthCheck("Unhealthy", backend, $"{e.GetType().Name}: {e.Message}");
        }
    }
}
