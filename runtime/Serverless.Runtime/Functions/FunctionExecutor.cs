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
    private readonly TimeSpan? _timeout;
    private readonly TimeProvider _time;
    private readonly FunctionExecutionDelegate _pipeline;

    public FunctionExecutor(IFunctionCatalog catalog, IServiceProvider root, ILoggerFactory loggers, IOptions<HostRootOptions> hostOptions,
        TimeProvider time, IEnumerable<MiddlewareRegistration> middleware)
    {
        _catalog = (FunctionCatalog)catalog;
        _root = root;
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
        foreach (var f in catalog.Functions) _catalog.Get(f).Logger = loggers.CreateLogger("Function." + f.Name);
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
        var indexed = _catalog.Get(function); // fails fast for a definition from another host
        AsyncServiceScope? scope = httpContext is null ? _root.CreateAsyncScope() : null;
        // One source carries both the caller's cancellation and functionTimeout (on the injected clock).
        using var timeoutSource = _timeout is { } t ? new CancellationTokenSource(t, _time) : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var callerRegistration = _timeout is null || !cancellationToken.CanBeCanceled
            ? default
            : cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), timeoutSource);
        try
        {
            var services = httpContext?.RequestServices ?? scope!.Value.ServiceProvider;
            var context = new FunctionContext(function, services, triggerPayload, httpContext,
                bindingData ?? EmptyBindingData, indexed.Logger, timeoutSource.Token);
            try
            {
                var task = _pipeline(context);
                if (!task.IsCompleted) await task.WaitAsync(timeoutSource.Token).ConfigureAwait(false);
                else await task.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_timeout is not null && timeoutSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
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
