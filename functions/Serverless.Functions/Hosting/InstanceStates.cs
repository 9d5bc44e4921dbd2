using Microsoft.DurableTask.Client;

namespace Serverless.Functions.Hosting;

/// <summary>
/// Whether an orchestration has yet to finish. <see cref="OrchestrationMetadata.IsRunning"/> is true for Running only,
/// so a batch or round that is scheduled but not yet picked up (Pending, e.g. just after a host restart) or Suspended
/// would read as ended.
/// </summary>
internal static class InstanceStates
{
    public static bool IsActive(this OrchestrationMetadata instance) => instance.RuntimeStatus is
        OrchestrationRuntimeStatus.Pending or OrchestrationRuntimeStatus.Running or OrchestrationRuntimeStatus.Suspended;
}
