using System.Linq.Expressions;
using System.Reflection;

namespace Serverless.Runtime.Functions;

/// <summary>A compiled call of a function method plus an adapter that awaits whatever it returns.</summary>
internal sealed class MethodInvoker
{
    private readonly Func<object?, object?[], object?> _call;
    private readonly Func<object?, ValueTask<object?>> _await;

    private MethodInvoker(Func<object?, object?[], object?> call, Func<object?, ValueTask<object?>> awaiter, ObjectFactory? factory)
    {
        _call = call;
        _await = awaiter;
        InstanceFactory = factory;
    }

    /// <summary>Creates the function class with constructor injection; null for static methods.</summary>
    public ObjectFactory? InstanceFactory { get; }

    public ValueTask<object?> InvokeAsync(object? instance, object?[] arguments) => _await(_call(instance, arguments));

    public static MethodInvoker Create(MethodInfo method)
    {
        var instance = Expression.Parameter(typeof(object), "instance");
        var args = Expression.Parameter(typeof(object?[]), "args");
        var parameters = method.GetParameters();
        var arguments = new Expression[parameters.Length];
        for (var i = 0; i < parameters.Length; i++)
            arguments[i] = Expression.Convert(Expression.ArrayIndex(args, Expression.Constant(i)), parameters[i].ParameterType);
        Expression call = method.IsStatic
            ? Expression.Call(method, arguments)
            : Expression.Call(Expression.Convert(instance, method.DeclaringType!), method, arguments);
        call = method.ReturnType == typeof(void)
            ? Expression.Block(call, Expression.Constant(null, typeof(object)))
            : Expression.Convert(call, typeof(object));
        var compiled = Expression.Lambda<Func<object?, object?[], object?>>(call, instance, args).Compile();
        var factory = method.IsStatic ? null : ActivatorUtilities.CreateFactory(method.DeclaringType!, Type.EmptyTypes);
        return new MethodInvoker(compiled, CreateAwaiter(method.ReturnType), factory);
    }

    private static Func<object?, ValueTask<object?>> CreateAwaiter(Type returnType)
    {
        if (returnType == typeof(Task)) return AwaitTask;
        if (returnType == typeof(ValueTask)) return AwaitValueTask;
        if (returnType.IsGenericType)
        {
            var definition = returnType.GetGenericTypeDefinition();
            var name = definition == typeof(Task<>) ? nameof(AwaitTaskOf) : definition == typeof(ValueTask<>) ? nameof(AwaitValueTaskOf) : null;
            if (name is not null)
            {
                return typeof(MethodInvoker).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(returnType.GetGenericArguments()[0])
                    .CreateDelegate<Func<object?, ValueTask<object?>>>();
            }
        }
        return static value => ValueTask.FromResult(value);
    }

    private static async ValueTask<object?> AwaitTask(object? task)
    {
        await ((Task)task!).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<object?> AwaitValueTask(object? task)
    {
        await ((ValueTask)task!).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<object?> AwaitTaskOf<T>(object? task) => await ((Task<T>)task!).ConfigureAwait(false);

    private static async ValueTask<object?> AwaitValueTaskOf<T>(object? task) => await ((ValueTask<T>)task!).ConfigureAwait(false);
}
