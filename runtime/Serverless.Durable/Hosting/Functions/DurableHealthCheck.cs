using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Serverless.Durable.Hosting.Functions;

/// <summary>"durable": the hub's storage answers a query (data: hub, backend).</summary>
internal sealed class DurableHealthCheck(DurableFunctionsRuntime runtime) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var host = await runtime.GetHostAsync(cancellationToken);
            await host.Client.QueryInstancesAsync(new OrchestrationQuery(PageSize: 1), cancellationToken);
            return HealthCheckResult.Healthy(data: new Dictionary<string, object>
            {
                ["hub"] = host.Options.HubName,
                ["backend"] = host.Options.StorageProvider.ToString().ToLowerInvariant(),
            });
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy("The durable task hub's storage is not reachable: " + ex.Message);
        }
    }
}
