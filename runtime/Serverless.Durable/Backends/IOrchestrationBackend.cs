using Serverless.Durable.Core;
using Serverless.Durable.History;

namespace Serverless.Durable.Backends;

/// <summary>A message queued for an instance; execution-scoped events carry the execution they belong to.</summary>
internal sealed record OrchestrationMessage(long Id, string? ExecutionId, HistoryEvent Event);

/// <summary>An instance locked for one episode: its history and the messages to process.</summary>
internal sealed class OrchestrationWorkItem
{
    public required string InstanceId { get; init; }
    public required string ExecutionId { get; init; }
    public required string Name { get; init; }
    public required OrchestrationRuntimeStatus Status { get; init; }
    public string? CustomStatus { get; init; }
    public required Guid LockToken { get; init; }
    public required IReadOnlyList<HistoryEvent> History { get; set; }
    /// <summary>History rows of the current execution when claimed (with the execution id, identifies the history exactly).</summary>
    public long HistoryCount { get; init; }
    public required IReadOnlyList<OrchestrationMessage> Messages { get; init; }
}

/// <summary>An activity call locked for execution.</summary>
internal sealed record ActivityWorkItem(long Id, string InstanceId, string ExecutionId, TaskScheduled Event, Guid LockToken, int DequeueCount);

/// <summary>
/// Durable storage of instances, history, messages (inbox, including durable timers as messages
/// with a future visible time) and activity work items. Work items are claimed with leases so
/// exactly one worker handles each at a time; an expired lease is taken over.
/// </summary>
internal interface IOrchestrationBackend : IAsyncDisposable
{
    /// <summary>Raised in this process when new work was enqueued (lets idle workers wake without waiting out their poll).</summary>
    event Action? WorkEnqueued;

    /// <summary>Raised in this process after an episode that finished an instance committed (lets waiting clients return at once).</summary>
    event Action<string>? InstanceFinished;

    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>Creates an instance (or restarts a finished one under the same id) and queues its start.</summary>
    /// <exception cref="OrchestrationAlreadyExistsException">The id is in use by an unfinished instance.</exception>
    Task CreateInstanceAsync(string instanceId, ExecutionStarted started, DateTime visibleAt, CancellationToken cancellationToken);

    /// <summary>Queues a message (external event or control operation) for an existing instance.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    Task SendMessageAsync(string instanceId, HistoryEvent message, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the next instance with visible messages. <paramref name="cachedHistory"/> (instance, execution, history count)
    /// may supply the history this worker already holds, which saves reading it again.
    /// </summary>
    Task<OrchestrationWorkItem?> LockNextOrchestrationAsync(TimeSpan lease, CancellationToken cancellationToken,
        Func<string, string, long, IReadOnlyList<HistoryEvent>?>? cachedHistory = null);

    /// <summary>Commits the episode in one transaction and releases the lock.</summary>
    /// <exception cref="LeaseLostException">Another worker took the instance over; nothing was written.</exception>
    Task CompleteOrchestrationAsync(OrchestrationWorkItem workItem, EpisodeOutcome outcome, CancellationToken cancellationToken);

    Task AbandonOrchestrationAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken);

    Task<bool> RenewOrchestrationLeaseAsync(OrchestrationWorkItem workItem, TimeSpan lease, CancellationToken cancellationToken);

    Task<IReadOnlyList<ActivityWorkItem>> LockNextActivitiesAsync(int maxCount, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes each completed work item and queues its result to the orchestration, in one transaction.
    /// A work item whose lease was taken over is skipped (its result is recorded once, by whoever deletes the row).
    /// </summary>
    Task CompleteActivitiesAsync(IReadOnlyList<(ActivityWorkItem WorkItem, HistoryEvent Result)> completions, CancellationToken cancellationToken);

    Task AbandonActivityAsync(ActivityWorkItem workItem, CancellationToken cancellationToken);

    Task<bool> RenewActivityLeaseAsync(ActivityWorkItem workItem, TimeSpan lease, CancellationToken cancellationToken);

    Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken);

    Task<IReadOnlyList<HistoryEvent>> GetHistoryAsync(string instanceId, CancellationToken cancellationToken);

    Task<OrchestrationQueryResult> QueryInstancesAsync(OrchestrationQuery query, CancellationToken cancellationToken);

    /// <summary>Deletes a finished instance with its history; false when it does not exist or has not finished.</summary>
    Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken);

    Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken);
}

/// <summary>Crash-test kill points (set only by the test worker process).</summary>
internal static class FaultInjection
{
    public static Action<string>? Hook;

    public static void Hit(string point) => Hook?.Invoke(point);
}
