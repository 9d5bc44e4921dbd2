using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Serverless.Durable.Backends;
using Serverless.Durable.Core;
using Serverless.Durable.History;
using Serverless.Durable.Payloads;

namespace Serverless.Durable;

/// <summary>Options of a new instance: its id (a new GUID when null) and when it may start.</summary>
public sealed record StartOrchestrationOptions(string? InstanceId = null, DateTimeOffset? StartAt = null);

/// <summary>
/// Starts, queries, signals and manages orchestration instances of one task hub. Thread-safe;
/// every method validates its arguments and talks only to storage, so a client works in a
/// process that runs no worker.
/// </summary>
public sealed class DurableTaskClient
{
    private readonly IOrchestrationBackend _backend;
    private readonly PayloadStore _payloads;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _finishWaiters = new(StringComparer.Ordinal);

    internal DurableTaskClient(IOrchestrationBackend backend, PayloadStore payloads, TimeProvider time, ILogger logger)
    {
        _backend = backend;
        _payloads = payloads;
        _time = time;
        _logger = logger;
        backend.InstanceFinished += id =>
        {
            if (_finishWaiters.TryRemove(id, out var waiter)) waiter.TrySetResult();
        };
    }

    /// <summary>Schedules a new instance of orchestrator <paramref name="orchestratorName"/>; returns its instance id.</summary>
    /// <exception cref="OrchestrationAlreadyExistsException">The given id belongs to an instance that has not finished.</exception>
    public async Task<string> ScheduleNewOrchestrationInstanceAsync(string orchestratorName, object? input = null,
        StartOrchestrationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orchestratorName);
        var instanceId = options?.InstanceId ?? Guid.NewGuid().ToString("N");
        ValidateInstanceId(instanceId);
        var now = _time.GetUtcNow().UtcDateTime;
        var payload = await _payloads.ExternalizeAsync(DataConverter.Serialize(input), cancellationToken);
        var started = new ExecutionStarted(now, orchestratorName, Guid.NewGuid().ToString("N"), payload);
        var visibleAt = options?.StartAt is { } at && at.UtcDateTime > now ? at.UtcDateTime : now;
        await _backend.CreateInstanceAsync(instanceId, started, visibleAt, cancellationToken);
        _logger.InstanceScheduled(instanceId, orchestratorName);
        return instanceId;
    }

    private static void ValidateInstanceId(string instanceId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        if (instanceId.Length > 256) throw new ArgumentException("An instance id is at most 256 characters.", nameof(instanceId));
        foreach (var c in instanceId)
            if (char.IsControl(c) || c is '/' or '\\' or '#' or '?')
                throw new ArgumentException("An instance id may not contain control characters or any of / \\ # ?.", nameof(instanceId));
    }

    /// <summary>Sends an event the instance can await with <c>WaitForExternalEvent</c>.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    public async Task RaiseEventAsync(string instanceId, string eventName, object? eventPayload = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        ArgumentException.ThrowIfNullOrWhiteSpace(eventName);
        var payload = await _payloads.ExternalizeAsync(DataConverter.Serialize(eventPayload), cancellationToken);
        await _backend.SendMessageAsync(instanceId, new EventRaised(_time.GetUtcNow().UtcDateTime, eventName, payload), cancellationToken);
    }

    /// <summary>Ends the instance with status Terminated; <paramref name="output"/> becomes its output. No effect on a finished instance.</summary>
    public async Task TerminateInstanceAsync(string instanceId, object? output = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        await _backend.SendMessageAsync(instanceId, new ExecutionTerminated(_time.GetUtcNow().UtcDateTime, DataConverter.Serialize(output)), cancellationToken);
    }

    /// <summary>Pauses the instance: messages queue up but are not processed until <see cref="ResumeInstanceAsync"/>.</summary>
    public Task SuspendInstanceAsync(string instanceId, string? reason = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return _backend.SendMessageAsync(instanceId, new ExecutionSuspended(_time.GetUtcNow().UtcDateTime, reason), cancellationToken);
    }

    public Task ResumeInstanceAsync(string instanceId, string? reason = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return _backend.SendMessageAsync(instanceId, new ExecutionResumed(_time.GetUtcNow().UtcDateTime, reason), cancellationToken);
    }

    /// <summary>The instance's status, or null when it does not exist.</summary>
    public async Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, bool getInputsAndOutputs = true, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        var metadata = await _backend.GetInstanceAsync(instanceId, cancellationToken);
        return metadata is null ? null : await ShapeAsync(metadata, getInputsAndOutputs, cancellationToken);
    }

    private async Task<OrchestrationMetadata> ShapeAsync(OrchestrationMetadata m, bool getInputsAndOutputs, CancellationToken ct) =>
        getInputsAndOutputs
            ? m with
            {
                SerializedInput = await _payloads.ResolveAsync(m.SerializedInput, ct),
                SerializedOutput = await _payloads.ResolveAsync(m.SerializedOutput, ct),
                SerializedCustomStatus = await _payloads.ResolveAsync(m.SerializedCustomStatus, ct),
            }
            : m with { SerializedInput = null, SerializedOutput = null };

    /// <summary>Waits until the instance is Completed, Failed or Terminated, and returns its final status.</summary>
    /// <exception cref="OrchestrationNotFoundException">No such instance.</exception>
    public async Task<OrchestrationMetadata> WaitForInstanceCompletionAsync(string instanceId, bool getInputsAndOutputs = true, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        var delay = TimeSpan.FromMilliseconds(5);
        try
        {
            while (true)
            {
                // Register before reading, so a finish between the read and the wait is not missed.
                var waiter = _finishWaiters.GetOrAdd(instanceId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                var metadata = await GetInstanceAsync(instanceId, getInputsAndOutputs, cancellationToken)
                    ?? throw new OrchestrationNotFoundException(instanceId);
                if (metadata.IsCompleted) return metadata;
                await Task.WhenAny(waiter.Task, Task.Delay(delay, _time, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 1.5, 250));
            }
        }
        finally
        {
            // The instance may finish in another process, where no in-process signal comes.
            _finishWaiters.TryRemove(instanceId, out _);
        }
    }

    /// <summary>Waits until the instance has left Pending.</summary>
    public async Task<OrchestrationMetadata> WaitForInstanceStartAsync(string instanceId, bool getInputsAndOutputs = false, CancellationToken cancellationToken = default)
    {
        var delay = TimeSpan.FromMilliseconds(5);
        while (true)
        {
            var metadata = await GetInstanceAsync(instanceId, getInputsAndOutputs, cancellationToken) ?? throw new OrchestrationNotFoundException(instanceId);
            if (metadata.RuntimeStatus != OrchestrationRuntimeStatus.Pending) return metadata;
            await Task.Delay(delay, _time, cancellationToken);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 1.5, 250));
        }
    }

    /// <summary>One page of instances matching <paramref name="query"/> (ordered by instance id).</summary>
    public async Task<OrchestrationQueryResult> QueryInstancesAsync(OrchestrationQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.PageSize is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(query), "PageSize must be between 1 and 1000.");
        var page = await _backend.QueryInstancesAsync(query, cancellationToken);
        var shaped = new List<OrchestrationMetadata>(page.Instances.Count);
        foreach (var m in page.Instances) shaped.Add(await ShapeAsync(m, true, cancellationToken));
        return page with { Instances = shaped };
    }

    /// <summary>Every instance matching <paramref name="query"/>, page by page.</summary>
    public async IAsyncEnumerable<OrchestrationMetadata> GetAllInstancesAsync(OrchestrationQuery query, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var next = query;
        while (true)
        {
            var page = await QueryInstancesAsync(next, cancellationToken);
            foreach (var m in page.Instances) yield return m;
            if (page.ContinuationToken is null) yield break;
            next = next with { ContinuationToken = page.ContinuationToken };
        }
    }

    /// <summary>
    /// Deletes a finished instance, its history and its large payloads in the blob store; false when it
    /// does not exist or is still running.
    /// </summary>
    public async Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        var references = new HashSet<string>(StringComparer.Ordinal);
        if (_payloads.Enabled)
        {
            foreach (var e in await _backend.GetHistoryAsync(instanceId, cancellationToken))
                PayloadStore.MapPayloads(e, p => { if (PayloadStore.IsReference(p)) references.Add(p!); return p; });
            if (await _backend.GetInstanceAsync(instanceId, cancellationToken) is { } m)
                foreach (var p in new[] { m.SerializedInput, m.SerializedOutput, m.SerializedCustomStatus })
                    if (PayloadStore.IsReference(p)) references.Add(p!);
        }
        if (!await _backend.PurgeInstanceAsync(instanceId, cancellationToken)) return false;
        foreach (var reference in references) await _payloads.DeleteAsync(reference, cancellationToken);
        return true;
    }

    /// <summary>Deletes every finished instance matching <paramref name="filter"/>; returns how many (large-payload blobs stay: purge one by one to remove them too).</summary>
    public Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return _backend.PurgeInstancesAsync(filter, cancellationToken);
    }

    /// <summary>The recorded history of the current execution (for diagnostics and tests).</summary>
    public Task<IReadOnlyList<HistoryEvent>> GetHistoryAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        return _backend.GetHistoryAsync(instanceId, cancellationToken);
    }
}
