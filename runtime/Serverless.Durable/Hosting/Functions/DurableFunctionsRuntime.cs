using System.Reflection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serverless.Durable.Core;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Storage;

namespace Serverless.Durable.Hosting.Functions;

/// <summary>
/// The durable engine inside the function host: at start it registers every
/// <c>[OrchestrationTrigger]</c> and <c>[ActivityTrigger]</c> function with a worker on the hub
/// configured in host.json, and provides the <see cref="DurableTaskClient"/>.
/// </summary>
internal sealed class DurableFunctionsRuntime(
    IFunctionCatalog catalog,
    IFunctionExecutor executor,
    IServiceProvider services,
    IOptions<DurableHostJsonOptions> options,
    DataDirectory dataDirectory,
    ILoggerFactory loggerFactory,
    TimeProvider time) : IHostedService, IAsyncDisposable
{
    private DurableTaskHost? _host;
    private readonly SemaphoreSlim _startGate = new(1, 1);

    /// <summary>The running engine (started on first use if a function asks for the client before the host started).</summary>
    public async Task<DurableTaskHost> GetHostAsync(CancellationToken cancellationToken)
    {
        if (_host is { } running) return running;
        await _startGate.WaitAsync(cancellationToken);
        try
        {
            if (_host is not null) return _host;
            var registry = BuildRegistry();
            var engineOptions = options.Value.ToEngineOptions(dataDirectory.Path);
            // Large payloads go to the host's default blob container (embedded directory or Azure).
            var blobs = services.GetService<IBlobStore>();
            _host = await DurableTaskHost.StartAsync(engineOptions, registry, blobs, loggerFactory, time, cancellationToken);
            return _host;
        }
        finally
        {
            _startGate.Release();
        }
    }

    public DurableTaskHost? Host => _host;

    public Task StartAsync(CancellationToken cancellationToken) => GetHostAsync(cancellationToken);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_host is { } host) await host.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is { } host) await host.DisposeAsync();
        _startGate.Dispose();
    }

    private DurableTaskRegistry BuildRegistry()
    {
        var registry = new DurableTaskRegistry();
        foreach (var function in catalog.Functions)
        {
            switch (function.Trigger)
            {
                case OrchestrationTriggerAttribute:
                    registry.AddOrchestrator(function.Name, CreateOrchestrator(function));
                    break;
                case ActivityTriggerAttribute:
                    var f = function;
                    registry.AddActivity(function.Name, context => executor.ExecuteAsync(f, context,
                        new Dictionary<string, object?> { ["InstanceId"] = context.InstanceId, ["TaskId"] = context.TaskId, ["Name"] = context.Name }));
                    break;
            }
        }
        return registry;
    }

    /// <summary>
    /// Orchestrators are called directly, not through the invocation pipeline: their code is replayed
    /// on the engine's single-threaded scheduler and must not await real I/O (which middleware may do).
    /// </summary>
    private OrchestratorFunc CreateOrchestrator(FunctionDefinition function)
    {
        var method = function.Method;
        var parameters = method.GetParameters();
        foreach (var p in parameters)
        {
            if (p.ParameterType != typeof(TaskOrchestrationContext) && p.ParameterType != typeof(ILogger) && p.ParameterType != typeof(CancellationToken))
                throw new FunctionIndexException($"Orchestrator function '{function.Name}': parameter '{p.Name}' of type {p.ParameterType.Name} cannot be bound; " +
                                                 "orchestrators take a TaskOrchestrationContext and optionally an ILogger (replay-safe) and a CancellationToken.");
        }
        var resultProperty = method.ReturnType.IsGenericType && method.ReturnType.GetGenericTypeDefinition() == typeof(Task<>)
            ? method.ReturnType.GetProperty(nameof(Task<object>.Result))
            : null;
        return async context =>
        {
            var instance = method.IsStatic ? null : ActivatorUtilities.GetServiceOrCreateInstance(services, function.ClassType);
            var arguments = new object?[parameters.Length];
            for (var i = 0; i < parameters.Length; i++)
            {
                var type = parameters[i].ParameterType;
                arguments[i] = type == typeof(TaskOrchestrationContext) ? context
                    : type == typeof(ILogger) ? context.CreateReplaySafeLogger(loggerFactory.CreateLogger("Function." + function.Name))
                    : CancellationToken.None;
            }
            object? returned;
            try
            {
                returned = method.Invoke(instance, arguments);
            }
            catch (TargetInvocationException ex) when (ex.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
                throw;
            }
            switch (returned)
            {
                case Task task:
                    await task;
                    return resultProperty?.GetValue(task);
                case ValueTask valueTask:
                    await valueTask;
                    return null;
                default:
                    return returned;
            }
        };
    }
}
