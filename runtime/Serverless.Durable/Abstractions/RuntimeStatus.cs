namespace Serverless.Durable;

/// <summary>The lifecycle state of an orchestration instance, as Durable Task reports it.</summary>
public enum OrchestrationRuntimeStatus
{
    /// <summary>Scheduled; no episode has run yet.</summary>
    Pending,
    Running,
    Completed,
    Failed,
    Terminated,
    Suspended,
}

/// <summary>Helpers over <see cref="OrchestrationRuntimeStatus"/>.</summary>
public static class OrchestrationRuntimeStatusExtensions
{
    /// <summary>True when the instance has finished and will not run again without a restart.</summary>
    public static bool IsTerminal(this OrchestrationRuntimeStatus status) =>
        status is OrchestrationRuntimeStatus.Completed or OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated;
}
