using System.Reflection;
using System.Text.Json;
using Serverless.Durable.Core;
using Serverless.Runtime.Functions;

namespace Serverless.Durable.Hosting.Functions;

/// <summary>Binds <c>[OrchestrationTrigger]</c>, <c>[ActivityTrigger]</c> and <c>[DurableClient]</c> parameters.</summary>
internal sealed class DurableParameterBinder : IFunctionParameterBinder
{
    public bool CanBind(FunctionDefinition function, ParameterInfo parameter)
    {
        if (parameter.GetCustomAttribute<OrchestrationTriggerAttribute>() is not null)
        {
            if (parameter.ParameterType != typeof(TaskOrchestrationContext))
                throw new FunctionIndexException($"Function '{function.Name}': an [OrchestrationTrigger] parameter must be a TaskOrchestrationContext, not {parameter.ParameterType.Name}.");
            return true;
        }
        if (parameter.GetCustomAttribute<ActivityTriggerAttribute>() is not null) return true;
        if (parameter.GetCustomAttribute<DurableClientAttribute>() is not null)
        {
            if (parameter.ParameterType != typeof(DurableTaskClient))
                throw new FunctionIndexException($"Function '{function.Name}': a [DurableClient] parameter must be a DurableTaskClient, not {parameter.ParameterType.Name}.");
            return true;
        }
        return function.Trigger is ActivityTriggerAttribute && parameter.ParameterType == typeof(TaskActivityContext);
    }

    public ValueTask<object?> BindAsync(FunctionContext context, ParameterInfo parameter)
    {
        if (parameter.GetCustomAttribute<DurableClientAttribute>() is not null)
            return ValueTask.FromResult<object?>(context.InstanceServices.GetRequiredService<DurableTaskClient>());
        if (parameter.GetCustomAttribute<OrchestrationTriggerAttribute>() is not null)
            return ValueTask.FromResult(context.TriggerPayload);
        if (context.TriggerPayload is not ActivityContextImpl activity)
            throw new FunctionBindingException($"Function '{context.FunctionName}' was not invoked by the durable engine.");
        if (parameter.ParameterType == typeof(TaskActivityContext)) return ValueTask.FromResult<object?>(activity);
        try
        {
            return ValueTask.FromResult(DataConverter.Deserialize(activity.SerializedInput, parameter.ParameterType));
        }
        catch (JsonException ex)
        {
            throw new FunctionBindingException($"The input of activity '{activity.Name}' is not a valid {parameter.ParameterType.Name}: {ex.Message}", ex);
        }
    }
}
