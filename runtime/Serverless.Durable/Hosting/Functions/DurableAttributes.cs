using Serverless.Runtime.Functions;

namespace Serverless.Durable;

/// <summary>
/// Marks an orchestrator function's <see cref="TaskOrchestrationContext"/> parameter, as in Durable
/// Functions. Orchestrator methods may also take an <c>ILogger</c> (replay-safe) and a
/// <c>CancellationToken</c> (never cancelled); they run outside the invocation middleware because
/// their code is replayed and must stay deterministic.
/// </summary>
public sealed class OrchestrationTriggerAttribute : TriggerBindingAttribute
{
    public override string TriggerKind => "orchestration";
}

/// <summary>
/// Marks an activity function's input parameter: its type is the JSON-deserialized input, or
/// <see cref="TaskActivityContext"/> for the raw context. Activities run through the invocation
/// middleware with functionTimeout, like any function.
/// </summary>
public sealed class ActivityTriggerAttribute : TriggerBindingAttribute
{
    public override string TriggerKind => "activity";
}

/// <summary>Binds a <see cref="DurableTaskClient"/> parameter of an HTTP, timer or queue function.</summary>
public sealed class DurableClientAttribute : InputBindingAttribute;
