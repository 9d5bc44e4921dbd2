using System.Text.Json.Serialization;

namespace Serverless.Durable.History;

/// <summary>
/// One recorded decision or observation of an orchestration. History is append-only; replaying it
/// in order rebuilds the orchestrator's state. Events that arrive from outside (completions,
/// timers, external events, control operations) travel as messages first and enter history when
/// an episode processes them. Payloads (inputs, results) are JSON text, or a blob reference when large.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "$t")]
[JsonDerivedType(typeof(OrchestratorStarted), "OrchestratorStarted")]
[JsonDerivedType(typeof(ExecutionStarted), "ExecutionStarted")]
[JsonDerivedType(typeof(TaskScheduled), "TaskScheduled")]
[JsonDerivedType(typeof(TaskCompleted), "TaskCompleted")]
[JsonDerivedType(typeof(TaskFailed), "TaskFailed")]
[JsonDerivedType(typeof(TimerCreated), "TimerCreated")]
[JsonDerivedType(typeof(TimerFired), "TimerFired")]
[JsonDerivedType(typeof(EventRaised), "EventRaised")]
[JsonDerivedType(typeof(SubOrchestrationInstanceCreated), "SubOrchestrationInstanceCreated")]
[JsonDerivedType(typeof(SubOrchestrationInstanceCompleted), "SubOrchestrationInstanceCompleted")]
[JsonDerivedType(typeof(SubOrchestrationInstanceFailed), "SubOrchestrationInstanceFailed")]
[JsonDerivedType(typeof(ContinuedAsNew), "ContinuedAsNew")]
[JsonDerivedType(typeof(ExecutionCompleted), "ExecutionCompleted")]
[JsonDerivedType(typeof(ExecutionFailed), "ExecutionFailed")]
[JsonDerivedType(typeof(ExecutionTerminated), "ExecutionTerminated")]
[JsonDerivedType(typeof(ExecutionSuspended), "ExecutionSuspended")]
[JsonDerivedType(typeof(ExecutionResumed), "ExecutionResumed")]
public abstract record HistoryEvent(DateTime Timestamp)
{
    /// <summary>True for terminate / suspend / resume, which are delivered even to a suspended instance.</summary>
    [JsonIgnore] public virtual bool IsControl => false;

    /// <summary>True for events that belong to one execution (completions, timers); dropped when they reach a later one.</summary>
    [JsonIgnore] public virtual bool IsExecutionScoped => false;
}

/// <summary>Marks the start of an episode; its timestamp is the replay-safe <c>CurrentUtcDateTime</c>.</summary>
public sealed record OrchestratorStarted(DateTime Timestamp) : HistoryEvent(Timestamp);

/// <summary>Who started a sub-orchestration, so its outcome can be sent back.</summary>
public sealed record ParentInstance(string InstanceId, string ExecutionId, int TaskScheduledId);

public sealed record ExecutionStarted(DateTime Timestamp, string Name, string ExecutionId, string? Input, ParentInstance? Parent = null) : HistoryEvent(Timestamp);

public sealed record TaskScheduled(DateTime Timestamp, int EventId, string Name, string? Input) : HistoryEvent(Timestamp);

public sealed record TaskCompleted(DateTime Timestamp, int TaskScheduledId, string? Result) : HistoryEvent(Timestamp)
{
    public override bool IsExecutionScoped => true;
}

public sealed record TaskFailed(DateTime Timestamp, int TaskScheduledId, TaskFailureDetails FailureDetails) : HistoryEvent(Timestamp)
{
    public override bool IsExecutionScoped => true;
}

public sealed record TimerCreated(DateTime Timestamp, int EventId, DateTime FireAt) : HistoryEvent(Timestamp);

public sealed record TimerFired(DateTime Timestamp, int TimerId, DateTime FireAt) : HistoryEvent(Timestamp)
{
    public override bool IsExecutionScoped => true;
}

public sealed record EventRaised(DateTime Timestamp, string Name, string? Input) : HistoryEvent(Timestamp);

public sealed record SubOrchestrationInstanceCreated(DateTime Timestamp, int EventId, string Name, string InstanceId, string? Input) : HistoryEvent(Timestamp);

public sealed record SubOrchestrationInstanceCompleted(DateTime Timestamp, int TaskScheduledId, string? Result) : HistoryEvent(Timestamp)
{
    public override bool IsExecutionScoped => true;
}

public sealed record SubOrchestrationInstanceFailed(DateTime Timestamp, int TaskScheduledId, TaskFailureDetails FailureDetails) : HistoryEvent(Timestamp)
{
    public override bool IsExecutionScoped => true;
}

/// <summary>The execution ended by restarting with a new input; the next execution's history starts empty.</summary>
public sealed record ContinuedAsNew(DateTime Timestamp, string? Input) : HistoryEvent(Timestamp);

public sealed record ExecutionCompleted(DateTime Timestamp, string? Result) : HistoryEvent(Timestamp);

public sealed record ExecutionFailed(DateTime Timestamp, TaskFailureDetails FailureDetails) : HistoryEvent(Timestamp);

public sealed record ExecutionTerminated(DateTime Timestamp, string? Reason) : HistoryEvent(Timestamp)
{
    public override bool IsControl => true;
}

public sealed record ExecutionSuspended(DateTime Timestamp, string? Reason) : HistoryEvent(Timestamp)
{
    public override bool IsControl => true;
}

public sealed record ExecutionResumed(DateTime Timestamp, string? Reason) : HistoryEvent(Timestamp)
{
    public override bool IsControl => true;
}
