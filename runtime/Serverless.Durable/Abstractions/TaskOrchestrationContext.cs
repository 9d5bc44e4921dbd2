using Microsoft.Extensions.Logging;

namespace Serverless.Durable;

/// <summary>
/// What an orchestrator function sees. Orchestrator code is replayed from the start on every
/// episode: each await on an activity, timer, sub-orchestration or external event is answered
/// from the recorded history when the outcome is already known, and only new decisions reach the
/// outside world. So the code must be deterministic: take the time from
/// <see cref="CurrentUtcDateTime"/>, ids from <see cref="NewGuid"/>, do I/O only in activities,
/// and never use <c>ConfigureAwait(false)</c>, <c>Task.Run</c> or <c>Task.Delay</c>.
/// Continuations run on a single-threaded scheduling context, one at a time, in a replayable order.
/// </summary>
public abstract class TaskOrchestrationContext
{
    /// <summary>The orchestrator's registered name.</summary>
    public abstract string Name { get; }

    public abstract string InstanceId { get; }

    /// <summary>True while code runs to rebuild state from history (its effects were already recorded).</summary>
    public abstract bool IsReplaying { get; }

    /// <summary>The time the current episode started, identical on every replay.</summary>
    public abstract DateTime CurrentUtcDateTime { get; }

    /// <summary>The input, deserialized from JSON.</summary>
    public abstract T? GetInput<T>();

    /// <summary>Schedules an activity and returns its JSON-deserialized result.</summary>
    /// <exception cref="TaskFailedException">The activity failed (after its retries).</exception>
    public abstract Task<TResult> CallActivityAsync<TResult>(string name, object? input = null, TaskOptions? options = null);

    public Task CallActivityAsync(string name, object? input = null, TaskOptions? options = null) =>
        CallActivityAsync<object?>(name, input, options);

    /// <summary>Starts a sub-orchestration and returns its output.</summary>
    /// <exception cref="TaskFailedException">The sub-orchestration failed (after its retries).</exception>
    public abstract Task<TResult> CallSubOrchestratorAsync<TResult>(string name, object? input = null, SubOrchestrationOptions? options = null);

    public Task CallSubOrchestratorAsync(string name, object? input = null, SubOrchestrationOptions? options = null) =>
        CallSubOrchestratorAsync<object?>(name, input, options);

    /// <summary>A durable timer: survives restarts; cancelling the token cancels the returned task (the timer row still fires, unobserved).</summary>
    public abstract Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken = default);

    public Task CreateTimer(TimeSpan delay, CancellationToken cancellationToken = default) =>
        CreateTimer(CurrentUtcDateTime + delay, cancellationToken);

    /// <summary>Waits for an event raised by a client (names are case-insensitive). Events raised before the wait are buffered.</summary>
    public abstract Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default);

    /// <summary>As <see cref="WaitForExternalEvent{T}(string, CancellationToken)"/>, with a durable timeout.</summary>
    /// <exception cref="TimeoutException">No such event arrived within <paramref name="timeout"/>.</exception>
    public abstract Task<T> WaitForExternalEvent<T>(string eventName, TimeSpan timeout);

    /// <summary>
    /// Ends this execution when the orchestrator returns and starts a fresh one with
    /// <paramref name="newInput"/> and an empty history (eternal orchestrations stay bounded).
    /// Unconsumed external events are carried over when <paramref name="preserveUnprocessedEvents"/>.
    /// </summary>
    public abstract void ContinueAsNew(object? newInput, bool preserveUnprocessedEvents = true);

    /// <summary>A JSON-serializable value clients see in the instance's status.</summary>
    public abstract void SetCustomStatus(object? customStatus);

    /// <summary>A deterministic name-based UUID (version 5) derived from the instance id, the episode time and a counter.</summary>
    public abstract Guid NewGuid();

    /// <summary>A logger that writes nothing while <see cref="IsReplaying"/>, so each message appears once.</summary>
    public abstract ILogger CreateReplaySafeLogger(ILogger logger);

    public ILogger CreateReplaySafeLogger(string categoryName) => CreateReplaySafeLogger(CreateLogger(categoryName));

    private protected abstract ILogger CreateLogger(string categoryName);
}
