using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Serverless.Durable.History;

namespace Serverless.Durable.Core;

/// <summary>
/// Runs one episode of an orchestration: replays the recorded history through the orchestrator
/// code (checking every recorded decision against the one the code makes again), then applies the
/// new messages, and collects the new decisions into an <see cref="EpisodeOutcome"/>.
/// Synchronous by design: all orchestrator code runs inside <see cref="OrchestrationSynchronizationContext.Run"/>.
/// </summary>
internal sealed partial class OrchestrationExecutor
{
    private readonly string _instanceId;
    private readonly IReadOnlyList<HistoryEvent> _history;
    private readonly IReadOnlyList<HistoryEvent> _messages;
    private readonly DurableTaskRegistry _registry;
    private readonly DateTime _now;
    private readonly ILoggerFactory _loggerFactory;
    private readonly OrchestrationSynchronizationContext _sync = new();

    // Decisions made by the code and not yet matched to history (id -> action).
    private readonly SortedDictionary<int, PendingAction> _pending = new();
    // Awaitable outcomes by action id.
    private readonly Dictionary<int, OpenTask> _open = [];
    private readonly HashSet<int> _resolvedIds = [];
    private readonly Dictionary<string, LinkedList<EventWaiter>> _waiters = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, Queue<string?>> _bufferedEvents = new(StringComparer.OrdinalIgnoreCase);
    private readonly EpisodeOutcome _outcome;

    private Context? _context;
    private ExecutionStarted? _started;
    private Task<object?>? _orchestratorTask;
    private bool _replaying = true;
    private bool _suspended;
    private bool _finished;
    private int _nextId;
    private DateTime _currentUtc;
    private object? _continueAsNewInput;
    private bool _continueAsNew;
    private bool _preserveEvents;
    private string? _customStatus;

    public OrchestrationExecutor(string instanceId, IReadOnlyList<HistoryEvent> history, IReadOnlyList<HistoryEvent> messages,
        DurableTaskRegistry registry, DateTime now, ILoggerFactory loggerFactory, string? customStatus)
    {
        _instanceId = instanceId;
        _history = history;
        _messages = messages;
        _registry = registry;
        _now = now;
        _loggerFactory = loggerFactory;
        _customStatus = customStatus;
        _outcome = new EpisodeOutcome { Consumed = new bool[messages.Count], Status = OrchestrationRuntimeStatus.Running };
    }

    public EpisodeOutcome Execute()
    {
        try
        {
            _sync.Run(Run);
        }
        catch (NonDeterministicOrchestrationException ex)
        {
            FailExecution(TaskFailureDetails.FromException(ex), clearDecisions: true);
        }
        _outcome.CustomStatus = _customStatus;
        return _outcome;
    }

    private void Run()
    {
        foreach (var e in _history)
        {
            if (e is ExecutionSuspended) _suspended = true;
            else if (e is ExecutionResumed) _suspended = false;
            Apply(e);
            _outcome.ReplayedEvents++;
        }
        _replaying = false;
        _currentUtc = _now;
        _outcome.NewEvents.Add(new OrchestratorStarted(_now));
        if (_suspended) _outcome.Status = OrchestrationRuntimeStatus.Suspended;

        // ExecutionStarted goes first whatever its queue position (it may share a batch with an early event).
        var order = Enumerable.Range(0, _messages.Count).OrderBy(i => _messages[i] is ExecutionStarted ? 0 : 1).ToArray();
        var deferred = new List<int>();
        foreach (var i in order)
        {
            if (_finished) { _outcome.Consumed[i] = true; continue; } // late messages to a finished execution are dropped
            var message = _messages[i];
            if (_suspended && !message.IsControl) { deferred.Add(i); continue; }
            ApplyNew(i, message);
            if (message is ExecutionResumed && !_finished)
            {
                foreach (var d in deferred) ApplyNew(d, _messages[d]);
                deferred.Clear();
            }
        }
        if (_started is null && !_finished)
        {
            // Nothing to run (messages for an instance that never started); drop them.
            Array.Fill(_outcome.Consumed, true);
            _outcome.NewEvents.Clear();
            _outcome.Status = OrchestrationRuntimeStatus.Pending;
            return;
        }
        if (!_finished) FlushNewDecisions();
    }

    private void ApplyNew(int index, HistoryEvent message)
    {
        _outcome.Consumed[index] = true;
        if (IsDuplicate(message)) return;
        message = message switch
        {
            // Stamp control messages with the time they were processed.
            ExecutionSuspended s => s with { Timestamp = _now },
            ExecutionResumed r => r with { Timestamp = _now },
            _ => message,
        };
        _outcome.NewEvents.Add(message);
        switch (message)
        {
            case ExecutionSuspended:
                _suspended = true;
                _outcome.Status = OrchestrationRuntimeStatus.Suspended;
                return;
            case ExecutionResumed:
                _suspended = false;
                _outcome.Status = OrchestrationRuntimeStatus.Running;
                return;
            case ExecutionTerminated t:
                Terminate(t);
                return;
        }
        Apply(message);
    }

    /// <summary>A completion for an outcome already recorded (a redelivered activity result) or never scheduled is dropped.</summary>
    private bool IsDuplicate(HistoryEvent message) => message switch
    {
        TaskCompleted c => !IsAwaitable(c.TaskScheduledId),
        TaskFailed f => !IsAwaitable(f.TaskScheduledId),
        TimerFired t => !IsAwaitable(t.TimerId),
        SubOrchestrationInstanceCompleted c => !IsAwaitable(c.TaskScheduledId),
        SubOrchestrationInstanceFailed f => !IsAwaitable(f.TaskScheduledId),
        ExecutionStarted => _started is not null,
        _ => false,
    };

    private bool IsAwaitable(int id) => id < _nextId && !_resolvedIds.Contains(id);

    private void Apply(HistoryEvent e)
    {
        switch (e)
        {
            case OrchestratorStarted s:
                _currentUtc = s.Timestamp;
                break;
            case ExecutionStarted s:
                Start(s);
                break;
            case TaskScheduled s:
                Match(s.EventId, PendingKind.Activity, s.Name, $"activity '{s.Name}'");
                break;
            case TimerCreated s:
                Match(s.EventId, PendingKind.Timer, null, "a timer");
                break;
            case SubOrchestrationInstanceCreated s:
                Match(s.EventId, PendingKind.SubOrchestration, s.Name, $"sub-orchestration '{s.Name}'");
                break;
            case TaskCompleted c:
                Resolve(c.TaskScheduledId, c.Result, null);
                break;
            case TaskFailed f:
                Resolve(f.TaskScheduledId, null, f.FailureDetails);
                break;
            case SubOrchestrationInstanceCompleted c:
                Resolve(c.TaskScheduledId, c.Result, null);
                break;
            case SubOrchestrationInstanceFailed f:
                Resolve(f.TaskScheduledId, null, f.FailureDetails);
                break;
            case TimerFired t:
                Resolve(t.TimerId, null, null);
                break;
            case EventRaised r:
                DeliverEvent(r.Name, r.Input);
                break;
        }
        _sync.Drain();
        CheckCompletion();
    }

    private void Start(ExecutionStarted started)
    {
        _started = started;
        if (!_registry.TryGetOrchestrator(started.Name, out var orchestrator))
        {
            FailExecution(new TaskFailureDetails("OrchestratorNotFound", $"No orchestrator named '{started.Name}' is registered with this worker."), clearDecisions: false);
            return;
        }
        _currentUtc = _replaying ? _currentUtc : _now;
        if (_currentUtc == default) _currentUtc = started.Timestamp;
        _context = new Context(this, started);
        try
        {
            _orchestratorTask = orchestrator(_context);
        }
        catch (Exception ex)
        {
            _orchestratorTask = Task.FromException<object?>(ex);
        }
    }

    private void CheckCompletion()
    {
        if (_finished || _orchestratorTask is not { IsCompleted: true } task) return;
        if (task.IsFaulted && task.Exception!.InnerException is NonDeterministicOrchestrationException nd)
            throw nd;
        if (_replaying)
        {
            // The code finished during replay, so history must already end the execution; if it does
            // not, the code took a different path from the recorded one.
            var last = _history[^1];
            if (last is not (ExecutionCompleted or ExecutionFailed or ContinuedAsNew or ExecutionTerminated))
                throw new NonDeterministicOrchestrationException(_nextId, "more steps after this point", "returns here");
            return;
        }
        FlushNewDecisions();
        if (task.IsFaulted)
        {
            FailExecution(TaskFailureDetails.FromException(task.Exception!.InnerException ?? task.Exception), clearDecisions: false);
        }
        else if (task.IsCanceled)
        {
            FailExecution(new TaskFailureDetails(typeof(TaskCanceledException).FullName!, "The orchestrator was cancelled."), clearDecisions: false);
        }
        else if (_continueAsNew)
        {
            var input = DataConverter.Serialize(_continueAsNewInput);
            _outcome.NewEvents.Add(new ContinuedAsNew(_now, input));
            _outcome.ContinueAsNew = new ExecutionStarted(_now, _started!.Name, Guid.NewGuid().ToString("N"), input, _started.Parent);
            if (_preserveEvents)
                foreach (var (name, queue) in _bufferedEvents)
                    foreach (var payload in queue)
                        _outcome.CarriedOverEvents.Add(new EventRaised(_now, name, payload));
            _outcome.Status = OrchestrationRuntimeStatus.Pending;
            _finished = true;
        }
        else
        {
            var output = DataConverter.Serialize(task.Result);
            _outcome.NewEvents.Add(new ExecutionCompleted(_now, output));
            _outcome.Status = OrchestrationRuntimeStatus.Completed;
            _outcome.Output = output;
            _finished = true;
            if (_started!.Parent is { } parent)
                _outcome.OutboundMessages.Add(new(parent.InstanceId, parent.ExecutionId, new SubOrchestrationInstanceCompleted(_now, parent.TaskScheduledId, output)));
        }
    }

    private void FailExecution(TaskFailureDetails failure, bool clearDecisions)
    {
        if (clearDecisions)
        {
            _outcome.NewEvents.RemoveAll(e => e is not OrchestratorStarted);
            _outcome.NewActivities.Clear();
            _outcome.NewTimers.Clear();
            _outcome.NewSubOrchestrations.Clear();
            _outcome.OutboundMessages.Clear();
            Array.Fill(_outcome.Consumed, true);
            if (_outcome.NewEvents.Count == 0) _outcome.NewEvents.Add(new OrchestratorStarted(_now));
        }
        _outcome.NewEvents.Add(new ExecutionFailed(_now, failure));
        _outcome.Status = OrchestrationRuntimeStatus.Failed;
        _outcome.Failure = failure;
        _finished = true;
        if (_started?.Parent is { } parent)
            _outcome.OutboundMessages.Add(new(parent.InstanceId, parent.ExecutionId, new SubOrchestrationInstanceFailed(_now, parent.TaskScheduledId, failure)));
    }

    private void Terminate(ExecutionTerminated terminated)
    {
        // The event is already in NewEvents; decisions made earlier in this episode still commit (they are harmless).
        FlushNewDecisions();
        _outcome.Status = OrchestrationRuntimeStatus.Terminated;
        _outcome.Output = terminated.Reason;
        _finished = true;
        if (_started?.Parent is { } parent)
            _outcome.OutboundMessages.Add(new(parent.InstanceId, parent.ExecutionId, new SubOrchestrationInstanceFailed(_now, parent.TaskScheduledId,
                new TaskFailureDetails("Terminated", $"Sub-orchestration '{_instanceId}' was terminated: {terminated.Reason}"))));
    }

    // ---- decisions ---------------------------------------------------------------------

    private enum PendingKind { Activity, Timer, SubOrchestration }

    private sealed record PendingAction(PendingKind Kind, string? Name, string? Input, DateTime FireAt, string? SubInstanceId)
    {
        public string Describe() => Kind switch
        {
            PendingKind.Activity => $"calls activity '{Name}'",
            PendingKind.Timer => "creates a timer",
            _ => $"calls sub-orchestration '{Name}'",
        };
    }

    private void Match(int id, PendingKind kind, string? name, string recorded)
    {
        if (!_pending.Remove(id, out var action))
            throw new NonDeterministicOrchestrationException(id, $"{recorded} scheduled at step {id}", "schedules nothing at that step");
        if (action.Kind != kind || !string.Equals(action.Name, name, StringComparison.OrdinalIgnoreCase))
            throw new NonDeterministicOrchestrationException(id, $"{recorded} scheduled", action.Describe());
    }

    /// <summary>Decisions not found in history are new: record them and send them out.</summary>
    private void FlushNewDecisions()
    {
        if (_replaying || _pending.Count == 0) return;
        foreach (var (id, action) in _pending)
        {
            switch (action.Kind)
            {
                case PendingKind.Activity:
                    var scheduled = new TaskScheduled(_now, id, action.Name!, action.Input);
                    _outcome.NewEvents.Add(scheduled);
                    _outcome.NewActivities.Add(scheduled);
                    break;
                case PendingKind.Timer:
                    var timer = new TimerCreated(_now, id, action.FireAt);
                    _outcome.NewEvents.Add(timer);
                    _outcome.NewTimers.Add(timer);
                    break;
                case PendingKind.SubOrchestration:
                    _outcome.NewEvents.Add(new SubOrchestrationInstanceCreated(_now, id, action.Name!, action.SubInstanceId!, action.Input));
                    _outcome.NewSubOrchestrations.Add(new SubOrchestrationStart(action.SubInstanceId!,
                        new ExecutionStarted(_now, action.Name!, Guid.NewGuid().ToString("N"), action.Input,
                            new ParentInstance(_instanceId, _started!.ExecutionId, id))));
                    break;
            }
        }
        _pending.Clear();
    }

    // ---- awaitables --------------------------------------------------------------------

    private sealed class OpenTask(string name)
    {
        public string Name { get; } = name;
        public TaskCompletionSource<string?> Completion { get; } = new();
    }

    private sealed class EventWaiter
    {
        public TaskCompletionSource<string?> Completion { get; } = new();
    }

    private Task<string?> Schedule(PendingKind kind, string? name, string? input, DateTime fireAt = default, string? subInstanceId = null)
    {
        if (_finished) return new TaskCompletionSource<string?>().Task; // never completes: the execution is over
        var id = _nextId++;
        _pending.Add(id, new PendingAction(kind, name, input, fireAt, subInstanceId));
        var open = new OpenTask(name ?? "timer");
        _open.Add(id, open);
        return open.Completion.Task;
    }

    private void Resolve(int id, string? result, TaskFailureDetails? failure)
    {
        if (!_open.Remove(id, out var open)) return;
        _resolvedIds.Add(id);
        if (failure is null) open.Completion.TrySetResult(result);
        else open.Completion.TrySetException(new TaskFailedException(open.Name, id, failure));
    }

    private void DeliverEvent(string name, string? payload)
    {
        if (_waiters.TryGetValue(name, out var list))
        {
            while (list.First is { } node)
            {
                list.RemoveFirst();
                if (node.Value.Completion.TrySetResult(payload)) return;
            }
        }
        if (!_bufferedEvents.TryGetValue(name, out var queue))
            _bufferedEvents[name] = queue = new Queue<string?>();
        queue.Enqueue(payload);
    }

    private Task<string?> WaitForEvent(string name, out EventWaiter? waiter)
    {
        if (_bufferedEvents.TryGetValue(name, out var queue) && queue.Count > 0)
        {
            waiter = null;
            return Task.FromResult(queue.Dequeue());
        }
        waiter = new EventWaiter();
        if (!_waiters.TryGetValue(name, out var list)) _waiters[name] = list = new LinkedList<EventWaiter>();
        list.AddLast(waiter);
        return waiter.Completion.Task;
    }

    private static T Convert<T>(string? json) => DataConverter.Deserialize<T>(json)!;
}
