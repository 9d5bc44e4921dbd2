namespace Serverless.Durable;

/// <summary>What an activity function sees. Activities run at least once: make them idempotent.</summary>
public abstract class TaskActivityContext
{
    public abstract string Name { get; }

    /// <summary>The orchestration instance that scheduled this activity.</summary>
    public abstract string InstanceId { get; }

    /// <summary>The orchestration's sequence number of this call; with <see cref="InstanceId"/> a stable idempotency key.</summary>
    public abstract int TaskId { get; }

    public abstract T? GetInput<T>();
}
