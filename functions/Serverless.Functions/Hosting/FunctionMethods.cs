using System.Collections.Concurrent;
using System.Reflection;

namespace Serverless.Functions.Hosting;

/// <summary>
/// The method behind each function, found from its <see cref="FunctionDefinition.EntryPoint"/>
/// ("Namespace.Type.Method") in this assembly, so middleware can read the attributes a function declares
/// ([RequirePermission], [AllowAnonymous], [EndpointRateLimit], [RequestBodyLimit]).
/// </summary>
internal static class FunctionMethods
{
    private static readonly ConcurrentDictionary<string, MethodInfo?> ByEntryPoint = new(StringComparer.Ordinal);

    /// <summary>Every [Function] method of this assembly, with its function name.</summary>
    public static IEnumerable<(string Name, MethodInfo Method)> All() =>
        from type in typeof(FunctionMethods).Assembly.GetTypes()
        from method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
        let function = method.GetCustomAttribute<FunctionAttribute>()
        where function is not null
        select (function.Name, method);

    public static MethodInfo? Of(FunctionDefinition definition) => ByEntryPoint.GetOrAdd(definition.EntryPoint, static entryPoint =>
    {
        var dot = entryPoint.LastIndexOf('.');
        if (dot <= 0) return null;
        var type = typeof(FunctionMethods).Assembly.GetType(entryPoint[..dot]);
        return type?.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .FirstOrDefault(m => m.Name == entryPoint[(dot + 1)..] && m.GetCustomAttribute<FunctionAttribute>() is not null);
    });

    public static bool IsHttp(MethodInfo method) => method.GetParameters().Any(p => p.GetCustomAttribute<HttpTriggerAttribute>() is not null);
}
