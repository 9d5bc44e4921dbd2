namespace Serverless.Runtime.Functions;

/// <summary>Marks a public method as a function; the name must be unique in the app.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class FunctionAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>
/// Base of every trigger attribute. A function has exactly one parameter carrying a trigger.
/// Modules add their own triggers (the durable engine's <c>[OrchestrationTrigger]</c>) by deriving
/// from this class and registering an <see cref="IFunctionParameterBinder"/> for the parameter
/// plus a listener (a hosted service) that finds its functions in <see cref="IFunctionCatalog"/>
/// and runs them through <see cref="IFunctionExecutor"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Parameter, AllowMultiple = false, Inherited = true)]
public abstract class TriggerBindingAttribute : Attribute
{
    /// <summary>A short, stable name: "http", "timer", "queue", "orchestration", "activity", ...</summary>
    public abstract string TriggerKind { get; }
}

/// <summary>
/// Base of non-trigger parameter bindings (for example the durable engine's <c>[DurableClient]</c>).
/// A parameter with such an attribute must be claimed by a registered <see cref="IFunctionParameterBinder"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Parameter, AllowMultiple = false, Inherited = true)]
public abstract class InputBindingAttribute : Attribute;

/// <summary>Kept for source compatibility with Azure Functions; the host enforces no function keys (authorization is a middleware).</summary>
public enum AuthorizationLevel
{
    Anonymous,
    User,
    Function,
    System,
    Admin,
}

/// <summary>
/// An HTTP trigger: the function answers <c>/api/{Route}</c> (default route: the function name) for
/// the given methods (none = any method). The parameter is an <c>HttpRequest</c> or <c>HttpContext</c>.
/// </summary>
public sealed class HttpTriggerAttribute : TriggerBindingAttribute
{
    public HttpTriggerAttribute(params string[] methods) => Methods = methods;

    public HttpTriggerAttribute(AuthorizationLevel authLevel, params string[] methods)
    {
        AuthLevel = authLevel;
        Methods = methods;
    }

    public override string TriggerKind => "http";
    public string[] Methods { get; }
    public AuthorizationLevel AuthLevel { get; } = AuthorizationLevel.Anonymous;
    public string? Route { get; set; }
}

/// <summary>
/// A timer trigger: a six-field NCrontab expression (<c>sec min hour day month weekday</c>, UTC), or a
/// TimeSpan ("00:05:00") for a fixed interval, or <c>%Setting%</c> read from configuration.
/// The parameter is a <see cref="Timers.TimerInfo"/>.
/// </summary>
public sealed class TimerTriggerAttribute(string schedule) : TriggerBindingAttribute
{
    public override string TriggerKind => "timer";
    public string Schedule { get; } = schedule;

    /// <summary>Also fire once when the host starts.</summary>
    public bool RunOnStartup { get; set; }

    /// <summary>Persist the schedule status so an occurrence missed while the host was down fires once (past due) at start.</summary>
    public bool UseMonitor { get; set; } = true;
}

/// <summary>
/// A queue trigger on <see cref="QueueName"/> (or <c>%Setting%</c>). The parameter is a string,
/// byte[], BinaryData, ReadOnlyMemory&lt;byte&gt;, <see cref="Storage.QueueMessage"/>, or a type deserialized from JSON.
/// </summary>
public sealed class QueueTriggerAttribute(string queueName) : TriggerBindingAttribute
{
    public override string TriggerKind => "queue";
    public string QueueName { get; } = queueName;
}
