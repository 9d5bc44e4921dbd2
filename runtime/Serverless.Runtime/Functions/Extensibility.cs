using System.Reflection;

namespace Serverless.Runtime.Functions;

/// <summary>The next step of the invocation pipeline.</summary>
public delegate Task FunctionExecutionDelegate(FunctionContext context);

/// <summary>
/// Runs around every function invocation (all triggers), like the Azure Functions worker's
/// <c>IFunctionsWorkerMiddleware</c>. Register with <c>services.AddFunctionsMiddleware&lt;T&gt;()</c>;
/// the first registered runs outermost. Middleware instances are singletons.
/// To short-circuit, set <see cref="FunctionContext.Result"/> and return without calling <c>next</c>.
/// </summary>
public interface IFunctionsWorkerMiddleware
{
    Task Invoke(FunctionContext context, FunctionExecutionDelegate next);
}

/// <summary>
/// Supplies values for function parameters. Binders registered in DI are asked first, in registration
/// order, before the host's built-in bindings; <see cref="CanBind"/> is called once per parameter while
/// the host indexes functions at start, <see cref="BindAsync"/> on every invocation (after middleware).
/// A parameter carrying a <see cref="TriggerBindingAttribute"/> or <see cref="InputBindingAttribute"/>
/// that no binder claims stops the host at start.
/// </summary>
public interface IFunctionParameterBinder
{
    bool CanBind(FunctionDefinition function, ParameterInfo parameter);

    ValueTask<object?> BindAsync(FunctionContext context, ParameterInfo parameter);
}

/// <summary>
/// Runs a function through the middleware pipeline. Listeners of module-defined triggers (the durable
/// engine's orchestration and activity workers) call this; the HTTP, timer and queue listeners do too.
/// </summary>
public interface IFunctionExecutor
{
    /// <summary>
    /// Invokes <paramref name="function"/> in a new DI scope and returns <see cref="FunctionContext.Result"/>
    /// (the awaited return value, or what a middleware set). The function's own exception propagates;
    /// a functionTimeout overrun throws <see cref="FunctionTimeoutException"/>.
    /// </summary>
    Task<object?> ExecuteAsync(FunctionDefinition function, object? triggerPayload,
        IReadOnlyDictionary<string, object?>? bindingData = null, CancellationToken cancellationToken = default);
}

/// <summary>The invocation ran longer than host.json's functionTimeout.</summary>
public sealed class FunctionTimeoutException(string functionName, TimeSpan timeout)
    : TimeoutException($"Function '{functionName}' exceeded functionTimeout ({timeout}).");

/// <summary>A parameter could not be bound from the trigger (bad JSON body, unparsable route value): HTTP 400.</summary>
public sealed class FunctionBindingException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The app's functions are invalid (duplicate names, unbindable parameters, bad cron): the host does not start.</summary>
public sealed class FunctionIndexException(string message) : Exception(message);
