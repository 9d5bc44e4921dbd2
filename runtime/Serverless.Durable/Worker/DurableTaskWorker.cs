using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Serverless.Durable.Backends;
using Serverless.Durable.Core;
using Serverless.Durable.History;
using Serverless.Durable.Payloads;

namespace Serverless.Durable.Worker;

/// <summary>
/// Pulls orchestration episodes and activity work items from the backend and runs them:
/// <see cref="DurableTaskOptions.MaxConcurrentOrchestratorFunctions"/> episode loops, one activity
/// fetch loop feeding up to <see cref="DurableTaskOptions.MaxConcurrentActivityFunctions"/>
/// activities, a flusher that records finished activities in batches, and a lease renewer.
/// Idle loops back off from the minimum to the maximum polling interval and wake at once when
/// this process enqueues work.
/// </summary>
internal sealed class DurableTaskWorker : IAsyncDisposable
{
    private readonly IOrchestrationBackend _backend;
    private readonly DurableTaskRegistry _registry;
    private readonly DurableTaskOptions _options;
    private readonly PayloadStore _payloads;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly DurableMetrics _metrics;
    private readonly WorkSignal _orchestrationSignal = new();
    private readonly WorkSignal _activitySignal = new();
    private readonly Channel<(ActivityWorkItem, HistoryEvent)> _completions = Channel.CreateUnbounded<(ActivityWorkItem, HistoryEvent)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<long, ActivityWorkItem> _runningActivities = new();
    private readonly SemaphoreSlim _activitySlots;
    private CancellationTokenSource? _stopping;
    private readonly List<Task> _loops = [];

    public DurableTaskWorker(IOrchestrationBackend backend, DurableTaskRegistry registry, DurableTaskOptions options, PayloadStore payloads,
        ILoggerFactory loggerFactory, TimeProvider time, DurableMetrics metrics)
    {
        _backend = backend;
        _registry = registry;
        _options = options;
        _payloads = payloads;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("Serverless.Durable.Worker");
        _time = time;
        _metrics = metrics;
        _activitySlots = new SemaphoreSlim(options.MaxConcurrentActivityFunctions);
        backend.WorkEnqueued += OnWorkEnqueued;
    }

    /// <summary>
    /// Called after each committed episode by scale-out tests with the instance id and the span in which the
    /// orchestrator ran: from after the lease was claimed to before the commit that releases it, so two spans
    /// of one instance overlap only if two workers really ran it at once (an end taken after the commit would
    /// also cover the moment another worker may legitimately claim the released instance).
    /// </summary>
    internal Action<string, DateTime, DateTime>? EpisodeObserver { get; set; }

    private void OnWorkEnqueued()
    {
        _orchestrationSignal.Set();
        _activitySignal.Set();
    }

    public void Start()
    {
        if (_stopping is not null) throw new InvalidOperationException("The worker is already started.");
        _stopping = new CancellationTokenSource();
        var ct = _stopping.Token;
        for (var i = 0; i < _options.MaxConcurrentOrchestratorFunctions; i++)
            _loops.Add(Task.Run(() => OrchestrationLoopAsync(ct)));
        _loops.Add(Task.Run(() => ActivityLoopAsync(ct)));
        _loops.Add(Task.Run(() => CompletionFlushLoopAsync(ct)));
        _loops.Add(Task.Run(() => LeaseRenewalLoopAsync(ct)));
        _logger.WorkerStarted(_options.HubName, _options.StorageProvider.ToString(), _registry.OrchestratorNames.Count, _registry.ActivityNames.Count);
    }

    public async Task StopAsync()
    {
        if (_stopping is null || _stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync();
        _completions.Writer.TryComplete();
        try { await Task.WhenAll(_loops); }
        catch (OperationCanceledException) { }
        _loops.Clear();
        _logger.WorkerStopped(_options.HubName);
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _backend.WorkEnqueued -= OnWorkEnqueued;
        await StopAsync();
        _stopping?.Dispose();
        _activitySlots.Dispose();
    }

    // ---- orchestrations --------------------------------------------------------------------

    private async Task OrchestrationLoopAsync(CancellationToken ct)
    {
        var delay = _options.MinPollingInterval;
        while (!ct.IsCancellationRequested)
        {
            var signal = _orchestrationSignal.Current;
            OrchestrationWorkItem? workItem;
            try
            {
                workItem = await _backend.LockNextOrchestrationAsync(_options.LeaseDuration, ct, CachedHistory);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception ex)
            {
                _logger.PollFailed("orchestration", ex);
                workItem = null;
            }
            if (workItem is null)
            {
                try { await WorkSignal.WaitAsync(signal, delay, _time, ct); }
                catch (OperationCanceledException) { return; }
                delay = signal.IsCompleted ? _options.MinPollingInterval : Min(delay * 2, _options.MaxPollingInterval);
                continue;
            }
            delay = _options.MinPollingInterval;
            await RunEpisodeAsync(workItem, ct);
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    // ---- history cache ---------------------------------------------------------------------
    // The history this worker committed last for an instance. It is used only when the stored
    // execution id and history length match, which identifies the history exactly (history is
    // append-only within an execution and every execution has a fresh id), so another worker's
    // episodes in between are noticed and the history is read again.

    private const int HistoryCacheLimit = 2048;
    private readonly ConcurrentDictionary<string, (string ExecutionId, long Count, List<HistoryEvent> History)> _historyCache = new(StringComparer.Ordinal);

    private IReadOnlyList<HistoryEvent>? CachedHistory(string instanceId, string executionId, long count) =>
        _historyCache.TryRemove(instanceId, out var entry) && entry.ExecutionId == executionId && entry.Count == count ? entry.History : null;

    private void RememberHistory(OrchestrationWorkItem workItem, EpisodeOutcome outcome)
    {
        if (outcome.IsTerminal || outcome.ContinueAsNew is not null || outcome.KeepInstanceState) return;
        if (_historyCache.Count >= HistoryCacheLimit) _historyCache.Clear();
        var history = new List<HistoryEvent>(workItem.History.Count + outcome.NewEvents.Count);
        history.AddRange(workItem.History);
        history.AddRange(outcome.NewEvents);
        _historyCache[workItem.InstanceId] = (workItem.ExecutionId, history.Count, history);
    }

    private async Task RunEpisodeAsync(OrchestrationWorkItem workItem, CancellationToken ct)
    {
        var episodeStart = _time.GetUtcNow().UtcDateTime;
        try
        {
            var outcome = await ExecuteAsync(workItem, ct);
            var episodeEnd = _time.GetUtcNow().UtcDateTime;
            await _backend.CompleteOrchestrationAsync(workItem, outcome, CancellationToken.None);
            RememberHistory(workItem, outcome);
            EpisodeObserver?.Invoke(workItem.InstanceId, episodeStart, episodeEnd);
            Record(workItem, outcome);
        }
        catch (LeaseLostException ex)
        {
            _logger.EpisodeDiscarded(workItem.InstanceId, ex.Message);
        }
        catch (Exception ex)
        {
            _logger.EpisodeAbandoned(workItem.InstanceId, ex);
            try { await _backend.AbandonOrchestrationAsync(workItem, CancellationToken.None); }
            catch (Exception abandonFailure) { _logger.EpisodeAbandoned(workItem.InstanceId, abandonFailure); }
        }
    }

    private async Task<EpisodeOutcome> ExecuteAsync(OrchestrationWorkItem workItem, CancellationToken ct)
    {
        var messages = workItem.Messages;
        if (workItem.Status.IsTerminal())
        {
            // Late messages (a timer or a duplicate result after completion): drop them.
            return new EpisodeOutcome { Consumed = Enumerable.Repeat(true, messages.Count).ToArray(), Status = workItem.Status, KeepInstanceState = true };
        }
        // Execution-scoped messages meant for an earlier execution (before ContinueAsNew or a restart) are dropped.
        var live = new List<HistoryEvent>(messages.Count);
        var liveIndex = new List<int>(messages.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i].ExecutionId is { } exec && exec != workItem.ExecutionId) continue;
            live.Add(messages[i].Event);
            liveIndex.Add(i);
        }
        var history = await _payloads.ResolveAllAsync(workItem.History, ct);
        var newMessages = await _payloads.ResolveAllAsync(live, ct);
        var executor = new OrchestrationExecutor(workItem.InstanceId, history, newMessages, _registry, _time.GetUtcNow().UtcDateTime, _loggerFactory, workItem.CustomStatus);
        var partial = executor.Execute();
        var consumed = new bool[messages.Count];
        for (var i = 0; i < messages.Count; i++) consumed[i] = true;
        for (var j = 0; j < liveIndex.Count; j++) consumed[liveIndex[j]] = partial.Consumed[j];
        var outcome = new EpisodeOutcome { Consumed = consumed };
        // Messages enter history as they came, with their blob references, not re-uploaded copies.
        Dictionary<HistoryEvent, HistoryEvent>? originals = null;
        for (var j = 0; j < live.Count; j++)
            if (!ReferenceEquals(live[j], newMessages[j])) (originals ??= new(ReferenceEqualityComparer.Instance))[newMessages[j]] = live[j];
        foreach (var e in partial.NewEvents)
            outcome.NewEvents.Add(originals is not null && originals.TryGetValue(e, out var original) ? original : e);
        outcome.NewActivities.AddRange(partial.NewActivities);
        outcome.NewTimers.AddRange(partial.NewTimers);
        outcome.NewSubOrchestrations.AddRange(partial.NewSubOrchestrations);
        outcome.OutboundMessages.AddRange(partial.OutboundMessages);
        outcome.CarriedOverEvents.AddRange(partial.CarriedOverEvents);
        outcome.Status = partial.Status;
        outcome.Output = partial.Output;
        outcome.Failure = partial.Failure;
        outcome.CustomStatus = partial.CustomStatus;
        outcome.ContinueAsNew = partial.ContinueAsNew;
        outcome.ReplayedEvents = partial.ReplayedEvents;
        outcome.KeepInstanceState = partial.Status == OrchestrationRuntimeStatus.Pending && partial.ContinueAsNew is null;
        await _payloads.ExternalizeOutcomeAsync(outcome, ct);
        return outcome;
    }

    private void Record(OrchestrationWorkItem workItem, EpisodeOutcome outcome)
    {
        var tag = new KeyValuePair<string, object?>("orchestration", workItem.Name);
        _metrics.Episodes.Add(1, tag);
        _metrics.Replays.Record(outcome.ReplayedEvents, tag);
        if (outcome.KeepInstanceState) return;
        var started = outcome.NewEvents.OfType<ExecutionStarted>().FirstOrDefault();
        if (started is not null)
        {
            _metrics.Started.Add(1, tag);
            _logger.InstanceStarted(workItem.InstanceId, workItem.Name);
        }
        _logger.EpisodeCompleted(workItem.InstanceId, outcome.ReplayedEvents, outcome.Consumed.Count(c => c), outcome.NewEvents.Count, outcome.NewActivities.Count);
        if (outcome.ContinueAsNew is not null)
        {
            _logger.InstanceContinuedAsNew(workItem.InstanceId, workItem.Name);
            return;
        }
        if (!outcome.IsTerminal) return;
        var executionStart = (started ?? workItem.History.OfType<ExecutionStarted>().FirstOrDefault())?.Timestamp;
        var durationMs = executionStart is { } s ? (_time.GetUtcNow().UtcDateTime - s).TotalMilliseconds : 0;
        _metrics.Duration.Record(durationMs, tag);
        switch (outcome.Status)
        {
            case OrchestrationRuntimeStatus.Completed: _metrics.Completed.Add(1, tag); break;
            case OrchestrationRuntimeStatus.Failed:
                _metrics.Failed.Add(1, tag);
                _logger.InstanceFailed(workItem.InstanceId, workItem.Name, outcome.Failure?.ToString() ?? "unknown");
                break;
            case OrchestrationRuntimeStatus.Terminated: _metrics.Terminated.Add(1, tag); break;
        }
        _logger.InstanceFinished(workItem.InstanceId, workItem.Name, outcome.Status, durationMs);
    }

    // ---- activities ------------------------------------------------------------------------

    private async Task ActivityLoopAsync(CancellationToken ct)
    {
        var delay = _options.MinPollingInterval;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                // Claim only as many items as there are free slots, so nothing waits locked in this process.
                await _activitySlots.WaitAsync(ct);
                var free = 1;
                while (free < 64 && _activitySlots.Wait(0)) free++;
                var signal = _activitySignal.Current;
                IReadOnlyList<ActivityWorkItem> items;
                try
                {
                    items = await _backend.LockNextActivitiesAsync(free, _options.LeaseDuration, ct);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.PollFailed("activity", ex);
                    items = [];
                }
                if (free > items.Count) _activitySlots.Release(free - items.Count);
                foreach (var item in items)
                {
                    _runningActivities[item.Id] = item;
                    _ = Task.Run(() => RunActivityAsync(item, ct), CancellationToken.None);
                }
                if (items.Count == 0)
                {
                    await WorkSignal.WaitAsync(signal, delay, _time, ct);
                    delay = signal.IsCompleted ? _options.MinPollingInterval : Min(delay * 2, _options.MaxPollingInterval);
                }
                else
                {
                    delay = _options.MinPollingInterval;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
        }
    }

    private async Task RunActivityAsync(ActivityWorkItem item, CancellationToken ct)
    {
        HistoryEvent result;
        var scheduled = item.Event;
        try
        {
            if (!_registry.TryGetActivity(scheduled.Name, out var activity))
                throw new InvalidOperationException($"No activity named '{scheduled.Name}' is registered with this worker.");
            var input = await _payloads.ResolveAsync(scheduled.Input, ct);
            var output = await activity(new ActivityContextImpl(scheduled.Name, item.InstanceId, scheduled.EventId, input));
            var serialized = await _payloads.ExternalizeAsync(DataConverter.Serialize(output), ct);
            result = new TaskCompleted(_time.GetUtcNow().UtcDateTime, scheduled.EventId, serialized);
            _metrics.Activities.Add(1, new KeyValuePair<string, object?>("activity", scheduled.Name));
            _logger.ActivityCompleted(scheduled.Name, scheduled.EventId, item.InstanceId);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Shutting down: the lease runs out and another worker (or a restart) runs it again.
            _runningActivities.TryRemove(item.Id, out _);
            _activitySlots.Release();
            return;
        }
        catch (Exception ex)
        {
            result = new TaskFailed(_time.GetUtcNow().UtcDateTime, scheduled.EventId, TaskFailureDetails.FromException(ex));
            _metrics.ActivityFailures.Add(1, new KeyValuePair<string, object?>("activity", scheduled.Name));
            _logger.ActivityFailed(scheduled.Name, scheduled.EventId, item.InstanceId, ex.Message);
        }
        _activitySlots.Release();
        if (!_completions.Writer.TryWrite((item, result))) _runningActivities.TryRemove(item.Id, out _);
    }

    private async Task CompletionFlushLoopAsync(CancellationToken ct)
    {
        var batch = new List<(ActivityWorkItem, HistoryEvent)>();
        var reader = _completions.Reader;
        try
        {
            while (await reader.WaitToReadAsync(CancellationToken.None))
            {
                while (batch.Count < 500 && reader.TryRead(out var completion)) batch.Add(completion);
                try
                {
                    await _backend.CompleteActivitiesAsync(batch, CancellationToken.None);
                }
                catch (Exception ex)
                {
                    // The rows stay locked until their leases expire; then they are run again (at least once).
                    _logger.ActivityCommitFailed(ex);
                }
                foreach (var (item, _) in batch) _runningActivities.TryRemove(item.Id, out _);
                batch.Clear();
            }
        }
        catch (ChannelClosedException) { }
    }

    private async Task LeaseRenewalLoopAsync(CancellationToken ct)
    {
        var period = _options.LeaseDuration / 3;
        while (!ct.IsCancellationRequested)
        {
            try { await Task.Delay(period, _time, ct); }
            catch (OperationCanceledException) { return; }
            foreach (var item in _runningActivities.Values)
            {
                try
                {
                    if (!await _backend.RenewActivityLeaseAsync(item, _options.LeaseDuration, ct))
                        _logger.LeaseRenewalFailed($"activity #{item.Id}", "another worker holds it now");
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _logger.LeaseRenewalFailed($"activity #{item.Id}", ex.Message);
                }
                catch (OperationCanceledException) { return; }
            }
        }
    }
}
