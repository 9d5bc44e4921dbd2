using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Runtime.Functions;

/// <summary>A middleware registration, kept in registration order.</summary>
internal sealed record MiddlewareRegistration(Type MiddlewareType);

/// <summary>
/// Builds the middleware chain once and runs invocations through it: a DI scope per invocation (the
/// request's scope for HTTP), functionTimeout, argument binding after middleware, then the call.
/// </summary>
internal sealed class FunctionExecutor : IFunctionExecutor
{
    private readonly FunctionCatalog _catalog;
    private readonly IServiceProvider _root;
    private readonly ILoggerFactory _loggers;
    private readonly TimeSpan? _timeout;
    private readonly TimeProvider _time;
    private readonly FunctionExecutionDelegate _pipeline;
    private readonly Dictionary<string, ILogger> _functionLoggers = new(StringComparer.Ordinal);

    public FunctionExecutor(IFunctionCatalog catalog, IServiceProvider root, ILoggerFactory loggers, IOptions<HostRootOptions> hostOptions,
        TimeProvider time, IEnumerable<MiddlewareRegistration> middleware)
    {
        _catalog = (FunctionCatalog)catalog;
        _root = root;
        _loggers = loggers;
        _timeout = hostOptions.Value.FunctionTimeout;
        _time = time;
        FunctionExecutionDelegate pipeline = InvokeFunctionAsync;
        foreach (var registration in middleware.Reverse())
        {
            var instance = (IFunctionsWorkerMiddleware)root.GetRequiredService(registration.MiddlewareType);
            var next = pipeline;
            pipeline = context => instance.Invoke(context, next);
        }
        _pipeline = pipeline;
        foreach (var f in catalog.Functions) _functionLoggers[f.Name] = loggers.CreateLogger("Function." + f.Name);
    }

    public Task<object?> ExecuteAsync(FunctionDefinition function, object? triggerPayload, IReadOnlyDictionary<string, object?>? bindingData = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(function);
        return ExecuteCoreAsync(function, triggerPayload, httpContext: null, bindingData, cancellationToken);
    }

    internal async Task<object?> ExecuteCoreAsync(FunctionDefinition function, object? triggerPayload, HttpContext? httpContext,
        IReadOnlyDictionary<string, object?>? bindingData, CancellationToken cancellationToken)
    {
        _catalog.Get(function); // fails fast for a definition from another host
        AsyncServiceScope? scope = httpContext is null ? _root.CreateAsyncScope() : null;
        using var timeoutSource = _timeout is { } t ? new CancellationTokenSource(t, _time) : null;
        using var linked = timeoutSource is null
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutSource.Token);
        try
        {
            var services = httpContext?.RequestServices ?? scope!.Value.ServiceProvider;
            var context = new FunctionContext(function, services, triggerPayload, httpContext,
                bindingData ?? EmptyBindingData, _functionLoggers[function.Name], linked.Token);
            try
            {
                await _pipeline(context).WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeoutSource?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
            {
                throw new FunctionTimeoutException(function.Name, _timeout!.Value);
            }
            return context.Result;
        }
        finally
        {
            if (scope is { } s) await s.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static readonly IReadOnlyDictionary<string, object?> EmptyBindingData = new Dictionary<string, object?>();

    /// <summary>The end of the pipeline: bind arguments, create the class, call, await, store the result.</summary>
    private async Task InvokeFunctionAsync(FunctionContext context)
    {
        var function = _catalog.Get(context.Definition);
        var arguments = new object?[function.Parameters.Length];
        for (var i = 0; i < arguments.Length; i++)
            arguments[i] = await function.Parameters[i].BindAsync(context).ConfigureAwait(false);
        var instance = function.Invoker.InstanceFactory?.Invoke(context.InstanceServices, null);
        try
        {
            context.Result = await function.Invoker.InvokeAsync(instance, arguments).ConfigureAwait(false);
        }
        finally
        {
            switch (instance)
            {
                case IAsyncDisposable asyncDisposable:
                    await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                    break;
                case IDisposable disposable:
                    disposable.Dispose();
                    break;
            }
        }
    }
}
