using System.Reflection;

namespace Serverless.Runtime.Functions;

/// <summary>
/// What the host knows about one function: read it from <see cref="IFunctionCatalog"/> (for example to
/// check that every function declares a permission) or from <see cref="FunctionContext.Definition"/>.
/// </summary>
public sealed class FunctionDefinition
{
    internal FunctionDefinition(string name, MethodInfo method, ParameterInfo triggerParameter, TriggerBindingAttribute trigger)
    {
        Name = name;
        Method = method;
        TriggerParameter = triggerParameter;
        Trigger = trigger;
        Attributes = [.. method.GetCustomAttributes(inherit: true).OfType<Attribute>(), .. method.DeclaringType!.GetCustomAttributes(inherit: true).OfType<Attribute>()];
        if (trigger is HttpTriggerAttribute http)
        {
            Route = "api/" + (string.IsNullOrWhiteSpace(http.Route) ? name : http.Route.Trim('/'));
            HttpMethods = [.. http.Methods.Select(m => m.ToUpperInvariant())];
        }
    }

    public string Name { get; }
    public MethodInfo Method { get; }
    public Type ClassType => Method.DeclaringType!;
    public TriggerBindingAttribute Trigger { get; }
    public string TriggerKind => Trigger.TriggerKind;
    public ParameterInfo TriggerParameter { get; }

    /// <summary>Attributes on the method first, then on its class (so a method-level attribute can override a class-level one).</summary>
    public IReadOnlyList<Attribute> Attributes { get; }

    /// <summary>HTTP only: the route template including the <c>api/</c> prefix, e.g. <c>api/federations/{id}/rounds</c>.</summary>
    public string? Route { get; }

    /// <summary>HTTP only: upper-case methods; empty means any.</summary>
    public IReadOnlyList<string> HttpMethods { get; } = [];

    /// <summary>The first attribute of type <typeparamref name="T"/> on the method, else on the class.</summary>
    public T? GetAttribute<T>() where T : Attribute => Attributes.OfType<T>().FirstOrDefault();

    public override string ToString() => $"{Name} ({TriggerKind})";
}

/// <summary>Every function the host indexed at start, in name order.</summary>
public interface IFunctionCatalog
{
    IReadOnlyList<FunctionDefinition> Functions { get; }

    /// <summary>The function with that name (case-insensitive), or null.</summary>
    FunctionDefinition? Find(string name);
}
