using Microsoft.AspNetCore.Hosting;
using Serverless.Durable.Hosting.Functions;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Durable;

/// <summary>Adds the durable engine to the function host.</summary>
public static class DurableServiceCollectionExtensions
{
    /// <summary>
    /// Registers <c>[OrchestrationTrigger]</c>, <c>[ActivityTrigger]</c> and <c>[DurableClient]</c>
    /// bindings, host.json <c>extensions.durableTask</c>, the worker (a hosted service), the
    /// <see cref="DurableTaskClient"/>, the management endpoints under
    /// <c>/runtime/webhooks/durabletask</c> and the <c>durable</c> health check.
    /// </summary>
    public static IServiceCollection AddDurableTask(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(DurableFunctionsRuntime))) return services;
        services.AddHostJsonSection<DurableHostJsonOptions>("extensions.durableTask", DurableHostJsonOptions.Validate);
        services.AddFunctionParameterBinder<DurableParameterBinder>();
        services.AddSingleton<DurableFunctionsRuntime>();
        services.AddHostedService(sp => sp.GetRequiredService<DurableFunctionsRuntime>());
        services.AddSingleton(sp => sp.GetRequiredService<DurableFunctionsRuntime>().GetHostAsync(CancellationToken.None).GetAwaiter().GetResult().Client);
        services.AddSingleton<DurableWebhookSigner>();
        services.AddSingleton<IStartupFilter, DurableHttpStartupFilter>();
        services.AddHealthChecks().AddCheck<DurableHealthCheck>("durable");
        return services;
    }
}
