using Serverless.Durable.Core;

namespace Serverless.Durable;

/// <summary>The state of an orchestration instance as a client sees it.</summary>
public sealed record OrchestrationMetadata(
    string InstanceId,
    string Name,
    OrchestrationRuntimeStatus RuntimeStatus,
    DateTime CreatedAt,
    DateTime LastUpdatedAt,
    string? SerializedInput,
    string? SerializedOutput,
    string? SerializedCustomStatus,
    TaskFailureDetails? FailureDetails)
{
    public bool IsRunning => RuntimeStatus is OrchestrationRuntimeStatus.Running or OrchestrationRuntimeStatus.Pending or OrchestrationRuntimeStatus.Suspended;
    public bool IsCompleted => RuntimeStatus.IsTerminal();
    public T? ReadInputAs<T>() => DataConverter.Deserialize<T>(SerializedInput);
    public T? ReadOutputAs<T>() => DataConverter.Deserialize<T>(SerializedOutput);
    public T? ReadCustomStatusAs<T>() => DataConverter.Deserialize<T>(SerializedCustomStatus);
}

/// <summary>A query over instances: any of <see cref="Statuses"/> (all when null), created in [CreatedFrom, CreatedTo).</summary>
public sealed record OrchestrationQuery(
    IReadOnlyCollection<OrchestrationRuntimeStatus>? Statuses = null,
    DateTime? CreatedFrom = null,
    DateTime? CreatedTo = null,
    string? InstanceIdPrefix = null,
    int PageSize = 100,
    string? ContinuationToken = null);

/// <summary>One page of a query; pass <see cref="ContinuationToken"/> back for the next (null at the end).</summary>
public sealed record OrchestrationQueryResult(IReadOnlyList<OrchestrationMetadata> Instances, string? ContinuationToken);

/// <summary>Which finished instances to purge: created in [CreatedFrom, CreatedTo) with one of <see cref="Statuses"/> (terminal ones only).</summary>
public sealed record PurgeInstancesFilter(DateTime? CreatedFrom = null, DateTime? CreatedTo = null, IReadOnlyCollection<OrchestrationRuntimeStatus>? Statuses = null);
