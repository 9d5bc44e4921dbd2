namespace Serverless.Host.Queues;

/// <summary>
/// Queue output bindings: after a successful invocation, each value the worker returned for a binding of
/// type "queue" is appended to that binding's queue (a collection is one message per item).
/// </summary>
internal static class QueueOutputs
{
    public static async Task WriteAsync(FunctionDescriptor function, InvocationResponse response, IQueueStore? store, CancellationToken cancel)
    {
        foreach (BindingDescriptor binding in function.Bindings)
        {
            if (binding.Direction == BindingInfo.Types.Direction.In || !binding.Type.Equals("queue", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            TypedData? value = Find(response, binding.Name);
            if (value is null || value.DataCase == TypedData.DataOneofCase.None)
            {
                continue;
            }
            string queue = binding.GetString("queueName") ?? throw new InvalidOperationException($"function {function.Name}: queue output {binding.Name} has no queueName");
            if (store is null)
            {
                throw new InvalidOperationException("no queue store is configured");
            }
            await store.CreateQueueAsync(queue, cancel);
            foreach (ReadOnlyMemory<byte> message in Messages(value))
            {
                await store.PutAsync(queue, message, TimeSpan.Zero, cancel);
            }
        }
    }

    private static TypedData? Find(InvocationResponse response, string name)
    {
        foreach (ParameterBinding output in response.OutputData)
        {
            if (output.Name == name)
            {
                return output.Data;
            }
        }
        return name == "$return" ? response.ReturnValue : null;
    }

    private static IEnumerable<ReadOnlyMemory<byte>> Messages(TypedData value)
    {
        switch (value.DataCase)
        {
            case TypedData.DataOneofCase.String:
                yield return System.Text.Encoding.UTF8.GetBytes(value.String);
                break;
            case TypedData.DataOneofCase.Json:
                yield return System.Text.Encoding.UTF8.GetBytes(value.Json);
                break;
            case TypedData.DataOneofCase.Bytes:
                yield return value.Bytes.Memory;
                break;
            case TypedData.DataOneofCase.CollectionString:
                foreach (string item in value.CollectionString.String)
                {
                    yield return System.Text.Encoding.UTF8.GetBytes(item);
                }
                break;
            case TypedData.DataOneofCase.CollectionBytes:
                foreach (Google.Protobuf.ByteString item in value.CollectionBytes.Bytes)
                {
                    yield return item.Memory;
                }
                break;
            default:
                throw new InvalidOperationException($"a queue output of type {value.DataCase} is not supported");
        }
    }
}
