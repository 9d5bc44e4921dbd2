using Serverless.Durable.History;

namespace Serverless.Durable.Core;

/// <summary>A sub-orchestration to create, with the event that starts it.</summary>
internal sealed record SubOrchestrationStart(string InstanceId, ExecutionStarted Started);

/// <summary>A message for another instance (an outcome sent back to a parent).</summary>
internal sealed record OutboundMessage(string InstanceId, string? ExecutionId, HistoryEvent Event);

/// <summary>
/// Everything one episode decided. The backend commits all of it in one transaction: history
/// appended, consumed messages deleted, activities / timers / sub-orchestrations / outbound
/// messages inserted, and the instance's status updated.
/// </summary>
internal sealed class EpisodeOutcome
{
    public List<HistoryEvent> NewEvents { get; } = [];
    /// <summary>Per input message: true when this episode consumed it (deferred messages stay queued).</summary>
    public required bool[] Consumed { get; init; }
    public List<TaskScheduled> NewActivities { get; } = [];
    public List<TimerCreated> NewTimers { get; } = [];
    public List<SubOrchestrationStart> NewSubOrchestrations { get; } = [];
    public List<OutboundMessage> OutboundMessages { get; } = [];
    public OrchestrationRuntimeStatus Status { get; set; }
    public string? Output { get; set; }
    public TaskFailureDetails? Failure { get; set; }
    public string? CustomStatus { get; set; }
    /// <summary>Set when the execution continued as new: the next execution's start (history is reset to nothing).</summary>
    public ExecutionStarted? ContinueAsNew { get; set; }
    /// <summary>External events carried over to the next execution.</summary>
    public List<EventRaised> CarriedOverEvents { get; } = [];
    public int ReplayedEvents { get; set; }
    /// <summary>True when nothing about the instance changes (messages to a finished or never-started instance are only dropped).</summary>
    public bool KeepInstanceState { get; set; }
    public bool IsTerminal => Status.IsTerminal();
}
