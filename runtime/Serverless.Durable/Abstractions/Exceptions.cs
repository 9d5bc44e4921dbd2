namespace Serverless.Durable;

/// <summary>An activity or sub-orchestration failed; thrown into the orchestrator at the await.</summary>
public sealed class TaskFailedException : Exception
{
    public TaskFailedException(string taskName, int taskId, TaskFailureDetails failureDetails)
        : base($"Task '{taskName}' (#{taskId}) failed with an unhandled exception: {failureDetails.ErrorMessage}")
    {
        TaskName = taskName;
        TaskId = taskId;
        FailureDetails = failureDetails;
    }

    public string TaskName { get; }
    public int TaskId { get; }
    public TaskFailureDetails FailureDetails { get; }
}

/// <summary>
/// Replaying an orchestrator produced a different decision from the one its history records
/// (code changed while instances were in flight, or it used non-deterministic APIs).
/// </summary>
public sealed class NonDeterministicOrchestrationException(int step, string expected, string actual)
    : Exception($"Non-deterministic orchestration detected at step {step}: the history records {expected}, but the orchestrator code now {actual}. " +
                "Orchestrator code must make the same decisions on every replay (use context.CurrentUtcDateTime / NewGuid, do I/O only in activities).")
{
    public int Step { get; } = step;
    public string Expected { get; } = expected;
    public string Actual { get; } = actual;
}

/// <summary>An instance with that id exists and has not finished; a new one cannot start under its id.</summary>
public sealed class OrchestrationAlreadyExistsException(string instanceId, OrchestrationRuntimeStatus status)
    : InvalidOperationException($"An orchestration with instance id '{instanceId}' already exists and is {status}; wait for it to finish, terminate it or purge it first.")
{
    public string InstanceId { get; } = instanceId;
    public OrchestrationRuntimeStatus Status { get; } = status;
}

/// <summary>No instance with that id exists.</summary>
public sealed class OrchestrationNotFoundException(string instanceId)
    : InvalidOperationException($"No orchestration instance with id '{instanceId}' exists.")
{
    public string InstanceId { get; } = instanceId;
}

/// <summary>The work item's lease expired and another worker took it over; this worker's outcome is discarded.</summary>
public sealed class LeaseLostException(string what)
    : Exception($"The lease on {what} was lost (it expired and another worker took the work item over); the outcome is discarded and the work is redone.");
