using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Serverless.Runtime.Functions;

/// <summary>
/// One invocation of a function, as the Azure Functions worker's <c>FunctionContext</c>: middleware
/// and functions see it; a function asks for it by declaring a parameter of this type.
/// </summary>
public sealed class FunctionContext
{
    internal FunctionContext(FunctionDefinition definition, IServiceProvider services, object? triggerPayload,
        HttpContext? httpContext, IReadOnlyDictionary<string, object?> bindingData, ILogger logger, CancellationToken cancellationToken)
    {
        Definition = definition;
        InstanceServices = services;
        TriggerPayload = triggerPayload;
        HttpContext = httpContext;
        BindingData = bindingData;
        Logger = logger;
        CancellationToken = cancellationToken;
    }

    private string? _invocationId;
    private Dictionary<object, object?>? _items;

    /// <summary>A fresh id per invocation (a GUID in "N" form).</summary>
    public string InvocationId => _invocationId ??= Guid.NewGuid().ToString("N");

    public string FunctionName => Definition.Name;
    public FunctionDefinition Definition { get; }

    /// <summary>The invocation's scoped services (for HTTP: the request's services).</summary>
    public IServiceProvider InstanceServices { get; }

    /// <summary>Cancelled when the host stops, the caller goes away or functionTimeout elapses.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>A logger with category <c>Function.&lt;name&gt;</c>.</summary>
    public ILogger Logger { get; }

    /// <summary>Per-invocation state shared between middleware and the function.</summary>
    public IDictionary<object, object?> Items => _items ??= [];

    /// <summary>What the trigger delivered: HttpContext, TimerInfo, QueueMessage, or a module's own payload.</summary>
    public object? TriggerPayload { get; }

    /// <summary>The request of an HTTP-triggered invocation; null for other triggers.</summary>
    public HttpContext? HttpContext { get; }

    /// <summary>Trigger metadata: route values and query for HTTP; Id, DequeueCount, InsertedAt for queues.</summary>
    public IReadOnlyDictionary<string, object?> BindingData { get; }

    /// <summary>
    /// The invocation's result. The function's return value lands here; a middleware that does not call
    /// <c>next</c> sets it to short-circuit (for HTTP, an <see cref="IResult"/> such as <c>Results.Problem(...)</c>).
    /// </summary>
    public object? Result { get; set; }

    public ILogger GetLogger(string categoryName) => InstanceServices.GetRequiredService<ILoggerFactory>().CreateLogger(categoryName);
}

/// <summary>Azure Functions-style helpers, so ported middleware reads the same.</summary>
public static class FunctionContextExtensions
{
    public static HttpContext? GetHttpContext(this FunctionContext context) => context.HttpContext;
}
