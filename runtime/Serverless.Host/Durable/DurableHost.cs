using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serverless.Host.Http;

namespace Serverless.Host.Durable;

/// <summary>
/// Durable Functions on the local host: the backend, the engine bridge (<see cref="DurableBridge"/>), the
/// <c>durableClient</c> binding, the TaskHubSidecarService the worker's DurableTaskClient calls (on the
/// worker-protocol gRPC server) and the HTTP management API. Started only when the app has a durable function.
/// </summary>
internal sealed class DurableHost : IAsyncDisposable
{
    private readonly DurableBridge _bridge;
    private readonly DurableClientBinding _binding;
    private readonly DurableHttpApi _httpApi;
    private readonly bool _ownsBackend;

    private DurableHost(DurableBackend backend, bool ownsBackend, DurableBridge bridge, DurableClientBinding binding, DurableHttpApi httpApi)
    {
        Backend = backend;
        _ownsBackend = ownsBackend;
        _bridge = bridge;
        _binding = binding;
        _httpApi = httpApi;
    }

    public DurableBackend Backend { get; }

    /// <summary>
    /// Registers the sidecar service on the worker-protocol gRPC server. It is built before the worker has
    /// indexed its functions, so the backend is looked up on the first call.
    /// </summary>
    public static void AddSidecar(IServiceCollection services, DurableSidecarSlot slot)
    {
        services.AddSingleton(slot);
        services.AddSingleton(provider =>
        {
            DurableBackend backend = slot.Backend ?? throw new InvalidOperationException("This app has no durable functions.");
            return new TaskHubGrpcServer(
                provider.GetRequiredService<IHostApplicationLifetime>(),
                provider.GetRequiredService<ILoggerFactory>(),
                backend.Service,
                backend.Client,
                // The API only: the host's own TaskHubWorker dispatches work (DurableBridge).
                Options.Create(new TaskHubGrpcServerOptions { Mode = TaskHubGrpcServerMode.ApiServerOnly }));
        });
    }

    public static void MapSidecar(WebApplication rpcServer) => rpcServer.MapGrpcService<TaskHubGrpcServer>();

    public static async Task<DurableHost?> StartAsync(DurableBackend? injected, string appDirectory, string dataDirectory, DurableSidecarSlot slot, Uri rpcAddress,
        WorkerChannel channel, IReadOnlyList<FunctionDescriptor> functions, FunctionKeys keys, ILoggerFactory loggers)
    {
        if (!functions.Any(DurableBridge.IsDurable))
        {
            return null;
        }
        DurableBackend backend = injected ?? await DurableBackend.FromHostJsonAsync(appDirectory, dataDirectory, loggers);
        slot.Backend = backend;
        DurableBridge bridge;
        try
        {
            bridge = await DurableBridge.StartAsync(backend, channel, functions, loggers);
        }
        catch
        {
            if (injected is null)
            {
                await backend.DisposeAsync();
            }
            throw;
        }
        string systemKey = DurableClientBinding.DeriveSystemKey(keys);
        var binding = new DurableClientBinding { TaskHubName = backend.HubName, RpcBaseUrl = rpcAddress, SystemKey = systemKey };
        foreach (FunctionDescriptor function in functions)
        {
            foreach (BindingDescriptor client in function.Bindings.Where(b => b.Type.Equals(DurableClientBinding.BindingType, StringComparison.OrdinalIgnoreCase)))
            {
                function.AddHostInput(client.Name, () => new TypedData { String = binding.ToJson() });
            }
        }
        DurableLogs.Started(loggers.CreateLogger("Serverless.Host.Durable"), backend.HubName, backend.Kind,
            functions.Count(f => f.Trigger?.Type.Equals(DurableBridge.OrchestrationTrigger, StringComparison.OrdinalIgnoreCase) == true),
            functions.Count(f => f.Trigger?.Type.Equals(DurableBridge.ActivityTrigger, StringComparison.OrdinalIgnoreCase) == true));
        return new DurableHost(backend, injected is null, bridge, binding, new DurableHttpApi(backend, keys, systemKey));
    }

    /// <summary>Maps the HTTP management API on the host's HTTP server.</summary>
    public void MapHttp(IEndpointRouteBuilder routes) => _httpApi.Map(routes);

    /// <summary>The HTTP server listens: management URLs can now carry its address.</summary>
    public void OnHttpListening(Uri httpAddress) => _binding.HttpAddress = httpAddress;

    public async ValueTask DisposeAsync()
    {
        await _bridge.DisposeAsync();
        if (_ownsBackend)
        {
            await Backend.DisposeAsync();
        }
    }
}

/// <summary>Where the sidecar finds the backend once the durable host has started.</summary>
internal sealed class DurableSidecarSlot
{
    public volatile DurableBackend? Backend;
}
