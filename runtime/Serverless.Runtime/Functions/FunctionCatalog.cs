using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Serverless.Runtime.Functions;

/// <summary>An assembly whose public <c>[Function]</c> methods the host indexes.</summary>
internal sealed record FunctionAssembly(Assembly Assembly, Type[]? OnlyTypes = null);

/// <summary>A function ready to run: its definition plus how to build each argument and await its result.</summary>
internal sealed class IndexedFunction(FunctionDefinition definition, ParameterBinding[] parameters, MethodInvoker invoker)
{
    public FunctionDefinition Definition { get; } = definition;
    public ParameterBinding[] Parameters { get; } = parameters;
    public MethodInvoker Invoker { get; } = invoker;

    /// <summary>Category "Function.&lt;name&gt;", created once by the executor.</summary>
    public ILogger Logger { get; set; } = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
}

/// <summary>Indexes every <c>[Function]</c> method once, at start; any problem stops the host with one message per function.</summary>
internal sealed class FunctionCatalog : IFunctionCatalog
{
    private readonly Dictionary<string, IndexedFunction> _byName = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<FunctionDefinition, IndexedFunction> _byDefinition = [];

    public FunctionCatalog(IEnumerable<FunctionAssembly> assemblies, IEnumerable<IFunctionParameterBinder> binders,
        IServiceProviderIsService isService, IConfiguration configuration)
    {
        var errors = new List<string>();
        var customBinders = binders.ToArray();
        var types = assemblies.SelectMany(a => a.OnlyTypes ?? a.Assembly.GetExportedTypes()).Distinct();
        {
            foreach (var type in types)
            {
                if (!type.IsClass || type.IsGenericTypeDefinition) continue;
                foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
                {
                    if (method.GetCustomAttribute<FunctionAttribute>() is not { } function) continue;
                    try
                    {
                        var indexed = Index(function.Name, method, customBinders, isService, configuration);
                        if (!_byName.TryAdd(indexed.Definition.Name, indexed))
                            errors.Add($"function '{function.Name}': the name is used twice ({_byName[function.Name].Definition.ClassType.Name}.{_byName[function.Name].Definition.Method.Name} and {type.Name}.{method.Name})");
                        else
                            _byDefinition[indexed.Definition] = indexed;
                    }
                    catch (FunctionIndexException e)
                    {
                        errors.Add(e.Message);
                    }
                }
            }
        }
        if (errors.Count > 0) throw new FunctionIndexException(string.Join(Environment.NewLine, errors));
        Functions = [.. _byName.Values.Select(f => f.Definition).OrderBy(f => f.Name, StringComparer.Ordinal)];
    }

    public IReadOnlyList<FunctionDefinition> Functions { get; }

    public FunctionDefinition? Find(string name) => _byName.TryGetValue(name, out var f) ? f.Definition : null;

    internal IndexedFunction Get(FunctionDefinition definition) =>
        _byDefinition.TryGetValue(definition, out var f) ? f : throw new ArgumentException($"Function '{definition.Name}' is not in this host's catalog.", nameof(definition));

    private static IndexedFunction Index(string name, MethodInfo method, IFunctionParameterBinder[] binders, IServiceProviderIsService isService, IConfiguration configuration)
    {
        string Where() => $"function '{name}' ({method.DeclaringType!.Name}.{method.Name})";
        if (string.IsNullOrWhiteSpace(name) || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')))
            throw new FunctionIndexException($"{Where()}: the name must be non-empty letters, digits, '_', '-' or '.'");
        if (method.IsGenericMethodDefinition)
            throw new FunctionIndexException($"{Where()}: a function cannot be a generic method");
        if (!method.IsStatic && method.DeclaringType!.IsAbstract)
            throw new FunctionIndexException($"{Where()}: instance functions need a non-abstract class");

        var parameters = method.GetParameters();
        var triggers = parameters.Select(p => (Parameter: p, Attribute: p.GetCustomAttribute<TriggerBindingAttribute>(inherit: true))).Where(t => t.Attribute is not null).ToArray();
        if (triggers.Length != 1)
            throw new FunctionIndexException($"{Where()}: needs exactly one parameter with a trigger attribute; found {triggers.Length}");
        var (triggerParameter, trigger) = (triggers[0].Parameter, triggers[0].Attribute!);
        var definition = new FunctionDefinition(name, method, triggerParameter, trigger);
        ValidateTrigger(definition, configuration, Where);

        var bindings = new ParameterBinding[parameters.Length];
        var bodySeen = false;
        for (var i = 0; i < parameters.Length; i++)
        {
            bindings[i] = ParameterBinding.Create(definition, parameters[i], binders, isService, ref bodySeen)
                ?? throw new FunctionIndexException($"{Where()}: parameter '{parameters[i].Name}' ({parameters[i].ParameterType.Name}) cannot be bound: " +
                    (parameters[i].GetCustomAttribute<TriggerBindingAttribute>() is { } t && t is not (HttpTriggerAttribute or TimerTriggerAttribute or QueueTriggerAttribute)
                        ? $"no binder is registered for [{t.GetType().Name}] (is its module added to the host?)"
                        : parameters[i].GetCustomAttribute<InputBindingAttribute>() is { } b
                            ? $"no binder is registered for [{b.GetType().Name}] (is its module added to the host?)"
                            : "it is not a trigger payload, a binding, a registered service, or (HTTP) a route/query value or the JSON body"));
        }
        return new IndexedFunction(definition, bindings, MethodInvoker.Create(method));
    }

    private static void ValidateTrigger(FunctionDefinition definition, IConfiguration configuration, Func<string> where)
    {
        switch (definition.Trigger)
        {
            case HttpTriggerAttribute http:
                foreach (var m in http.Methods)
                    if (m is null || !m.All(char.IsAsciiLetter))
                        throw new FunctionIndexException($"{where()}: '{m}' is not an HTTP method");
                try
                {
                    Microsoft.AspNetCore.Routing.Patterns.RoutePatternFactory.Parse(definition.Route!);
                }
                catch (Microsoft.AspNetCore.Routing.Patterns.RoutePatternException e)
                {
                    throw new FunctionIndexException($"{where()}: route '{http.Route}' is invalid: {e.Message}");
                }
                break;
            case TimerTriggerAttribute timer:
                if (!Timers.TimerSchedule.TryParse(ResolveSetting(timer.Schedule, configuration), out _, out var error))
                    throw new FunctionIndexException($"{where()}: schedule '{timer.Schedule}': {error}");
                break;
            case QueueTriggerAttribute queue:
                var queueName = ResolveSetting(queue.QueueName, configuration);
                if (!Storage.StorageNames.IsValidQueueName(queueName) || queueName.Length > 56)
                    throw new FunctionIndexException($"{where()}: queue '{queueName}' must be 3-56 lower-case letters, digits and single hyphens (room for '-poison')");
                break;
        }
    }

    /// <summary>Azure Functions' <c>%Name%</c> indirection: the value comes from configuration.</summary>
    internal static string ResolveSetting(string value, IConfiguration configuration)
    {
        if (value.Length > 2 && value[0] == '%' && value[^1] == '%')
        {
            var key = value[1..^1];
            return configuration[key] ?? throw new FunctionIndexException($"setting '{key}' (referenced as '{value}') is not configured");
        }
        return value;
    }
}
