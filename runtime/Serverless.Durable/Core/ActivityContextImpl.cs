namespace Serverless.Durable.Core;

/// <summary>The activity context the worker hands to activity code (and to the host's parameter binder).</summary>
internal sealed class ActivityContextImpl(string name, string instanceId, int taskId, string? serializedInput) : TaskActivityContext
{
    public override string Name => name;
    public override string InstanceId => instanceId;
    public override int TaskId => taskId;
    public string? SerializedInput => serializedInput;
    public override T? GetInput<T>() where T : default => DataConverter.Deserialize<T>(serializedInput);
}
