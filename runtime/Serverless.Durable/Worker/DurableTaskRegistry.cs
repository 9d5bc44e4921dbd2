namespace Serverless.Durable;

/// <summary>An orchestrator: returns its output (serialized to JSON), or null.</summary>
public delegate Task<object?> OrchestratorFunc(TaskOrchestrationContext context);

/// <summary>An activity: returns its result (serialized to JSON), or null.</summary>
public delegate Task<object?> ActivityFunc(TaskActivityContext context);

/// <summary>Orchestrators and activities by name (names are case-insensitive, as in Durable Functions).</summary>
public sealed class DurableTaskRegistry
{
    private readonly Dictionary<string, OrchestratorFunc> _orchestrators = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, ActivityFunc> _activities = new(StringComparer.OrdinalIgnoreCase);

    public DurableTaskRegistry AddOrchestrator(string name, OrchestratorFunc orchestrator)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(orchestrator);
        if (!_orchestrators.TryAdd(name, orchestrator))
            throw new ArgumentException($"An orchestrator named '{name}' is already registered.", nameof(name));
        return this;
    }

    public DurableTaskRegistry AddOrchestrator<TInput, TOutput>(string name, Func<TaskOrchestrationContext, TInput?, Task<TOutput>> orchestrator)
    {
        ArgumentNullException.ThrowIfNull(orchestrator);
        return AddOrchestrator(name, async context => await orchestrator(context, context.GetInput<TInput>()));
    }

    public DurableTaskRegistry AddActivity(string name, ActivityFunc activity)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(activity);
        if (!_activities.TryAdd(name, activity))
            throw new ArgumentException($"An activity named '{name}' is already registered.", nameof(name));
        return this;
    }

    public DurableTaskRegistry AddActivity<TInput, TOutput>(string name, Func<TaskActivityContext, TInput?, Task<TOutput>> activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        return AddActivity(name, async context => await activity(context, context.GetInput<TInput>()));
    }

    public DurableTaskRegistry AddActivity<TInput, TOutput>(string name, Func<TInput?, Task<TOutput>> activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        return AddActivity(name, async context => await activity(context.GetInput<TInput>()));
    }

    public DurableTaskRegistry AddActivity<TInput, TOutput>(string name, Func<TInput?, TOutput> activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        return AddActivity(name, context => Task.FromResult<object?>(activity(context.GetInput<TInput>())));
    }

    internal bool TryGetOrchestrator(string name, out OrchestratorFunc orchestrator) => _orchestrators.TryGetValue(name, out orchestrator!);

    internal bool TryGetActivity(string name, out ActivityFunc activity) => _activities.TryGetValue(name, out activity!);

    public IReadOnlyCollection<string> OrchestratorNames => _orchestrators.Keys;

    public IReadOnlyCollection<string> ActivityNames => _activities.Keys;
}
