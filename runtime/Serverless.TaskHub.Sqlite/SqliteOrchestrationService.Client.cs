using System.Text;
using DurableTask.Core.Query;
using Microsoft.Data.Sqlite;

namespace Serverless.TaskHub.Sqlite;

public sealed partial class SqliteOrchestrationService
{
    public Task CreateTaskOrchestrationAsync(TaskMessage creationMessage) => CreateTaskOrchestrationAsync(creationMessage, dedupeStatuses: null!);

    /// <summary>
    /// Creates the instance (Pending) and queues its start message in one transaction. An
    /// instance of that id that is still live, or whose status is in
    /// <paramref name="dedupeStatuses"/>, makes this throw
    /// <see cref="DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException"/>; one that has ended is restarted.
    /// </summary>
    public async Task CreateTaskOrchestrationAsync(TaskMessage creationMessage, OrchestrationStatus[] dedupeStatuses)
    {
        ArgumentNullException.ThrowIfNull(creationMessage);
        if (creationMessage.Event is not ExecutionStartedEvent)
            throw new ArgumentException("A creation message carries an ExecutionStartedEvent.", nameof(creationMessage));
        ArgumentException.ThrowIfNullOrEmpty(creationMessage.OrchestrationInstance?.InstanceId, nameof(creationMessage));
        await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
        {
            await CreateInstanceCoreAsync(scope, creationMessage, dedupeStatuses, fromOrchestration: false, UtcNow).ConfigureAwait(false);
            await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        _orchestrationWork.Set();
        _instanceChanged.Set();
    }

    public Task SendTaskOrchestrationMessageAsync(TaskMessage message) => SendTaskOrchestrationMessageBatchAsync(message);

    /// <summary>Queues events (raise, terminate, suspend, resume) in instances' inboxes, in one transaction; a message to an unknown instance is dropped.</summary>
    public async Task SendTaskOrchestrationMessageBatchAsync(params TaskMessage[] messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var now = UtcNow;
        await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
        {
            foreach (var m in messages)
            {
                ArgumentException.ThrowIfNullOrEmpty(m?.OrchestrationInstance?.InstanceId, nameof(messages));
                if (m.Event is ExecutionStartedEvent)
                    await CreateInstanceCoreAsync(scope, m, dedupeStatuses: null, fromOrchestration: false, now).ConfigureAwait(false);
                else
                    await scope.Command(InsertMessageSql).With("@id", m.OrchestrationInstance.InstanceId).With("@vis", now.Ticks)
                        .With("@payload", MessageSerializer.Serialize(m)).ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        _orchestrationWork.Set();
    }

    public Task ForceTerminateTaskOrchestrationAsync(string instanceId, string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        return SendTaskOrchestrationMessageAsync(new TaskMessage
        {
            OrchestrationInstance = new OrchestrationInstance { InstanceId = instanceId },
            Event = new ExecutionTerminatedEvent(-1, reason),
        });
    }

    /// <summary>Waits until the instance has ended (or <paramref name="timeout"/> passes: then null). Checkpoints in this process wake it; polling finds others.</summary>
    public async Task<OrchestrationState> WaitForOrchestrationAsync(string instanceId, string executionId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        var started = _time.GetTimestamp();
        while (true)
        {
            var changed = _instanceChanged.Current;
            var state = await GetOrchestrationStateAsync(instanceId, executionId).ConfigureAwait(false);
            if (state is not null && IsTerminal(state.OrchestrationStatus)) return state;
            var wait = timeout - _time.GetElapsedTime(started);
            if (wait <= TimeSpan.Zero) return null!;
            cancellationToken.ThrowIfCancellationRequested();
            await WorkSignal.WaitAsync(changed, wait < _options.PollingInterval ? wait : _options.PollingInterval, _time, cancellationToken).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Only the latest execution is kept, so <paramref name="allExecutions"/> changes nothing.</summary>
    public async Task<IList<OrchestrationState>> GetOrchestrationStateAsync(string instanceId, bool allExecutions)
    {
        var state = await GetOrchestrationStateAsync(instanceId, executionId: null!).ConfigureAwait(false);
        return state is null ? [] : [state];
    }

    public async Task<OrchestrationState> GetOrchestrationStateAsync(string instanceId, string executionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        await using var connection = await _store.OpenReaderAsync(CancellationToken.None).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT execution_id, state FROM instances WHERE instance_id = @id";
        cmd.With("@id", instanceId);
        await using var reader = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
        if (!await reader.ReadAsync().ConfigureAwait(false)) return null!;
        if (!string.IsNullOrEmpty(executionId) && !string.Equals(executionId, reader.GetString(0), StringComparison.Ordinal)) return null!;
        return MessageSerializer.DeserializeState(reader.GetString(1));
    }

    /// <summary>The latest execution's history as a JSON array of DurableTask.Core history events.</summary>
    public async Task<string> GetOrchestrationHistoryAsync(string instanceId, string executionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        await using var connection = await _store.OpenReaderAsync(CancellationToken.None).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT h.payload FROM history h JOIN instances i ON i.instance_id = h.instance_id WHERE h.instance_id = @id AND (@exec IS NULL OR i.execution_id = @exec) ORDER BY h.seq";
        cmd.With("@id", instanceId).With("@exec", string.IsNullOrEmpty(executionId) ? null : executionId);
        await using var reader = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
        var events = new List<HistoryEvent>();
        while (await reader.ReadAsync().ConfigureAwait(false)) events.Add(MessageSerializer.DeserializeEvent(reader.GetString(0)));
        return MessageSerializer.SerializeHistory(events);
    }

    public async Task PurgeOrchestrationHistoryAsync(DateTime thresholdDateTimeUtc, OrchestrationStateTimeRangeFilterType timeRangeFilterType)
    {
        var column = timeRangeFilterType switch
        {
            OrchestrationStateTimeRangeFilterType.OrchestrationCreatedTimeFilter => "created_at",
            OrchestrationStateTimeRangeFilterType.OrchestrationCompletedTimeFilter => "completed_at",
            OrchestrationStateTimeRangeFilterType.OrchestrationLastUpdatedTimeFilter => "last_updated_at",
            _ => throw new ArgumentOutOfRangeException(nameof(timeRangeFilterType)),
        };
        await PurgeWhereAsync($"{column} < @threshold", [("@threshold", thresholdDateTimeUtc.ToUniversalTime().Ticks)], TerminalStatuses).ConfigureAwait(false);
    }

    /// <summary>Deletes an ended instance with its history and leftovers; a live one is kept (0 deleted).</summary>
    public async Task<PurgeResult> PurgeInstanceStateAsync(string instanceId)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        return new PurgeResult(await PurgeWhereAsync("instance_id = @id", [("@id", instanceId)], TerminalStatuses).ConfigureAwait(false));
    }

    public async Task<PurgeResult> PurgeInstanceStateAsync(PurgeInstanceFilter purgeInstanceFilter)
    {
        ArgumentNullException.ThrowIfNull(purgeInstanceFilter);
        var statuses = purgeInstanceFilter.RuntimeStatus?.Where(IsTerminal).ToArray() ?? TerminalStatuses;
        if (statuses.Length == 0) return new PurgeResult(0);
        var where = "created_at >= @from";
        var parameters = new List<(string, object?)> { ("@from", purgeInstanceFilter.CreatedTimeFrom.ToUniversalTime().Ticks) };
        if (purgeInstanceFilter.CreatedTimeTo is { } to)
        {
            where += " AND created_at <= @to";
            parameters.Add(("@to", to.ToUniversalTime().Ticks));
        }
        return new PurgeResult(await PurgeWhereAsync(where, parameters, statuses).ConfigureAwait(false));
    }

    private static readonly OrchestrationStatus[] TerminalStatuses =
        [OrchestrationStatus.Completed, OrchestrationStatus.Failed, OrchestrationStatus.Terminated, OrchestrationStatus.Canceled];

    private async Task<int> PurgeWhereAsync(string where, IReadOnlyList<(string Name, object? Value)> parameters, OrchestrationStatus[] statuses)
    {
        var statusList = string.Join(", ", statuses.Select(s => ((int)s).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var selection = $"SELECT instance_id FROM instances WHERE {where} AND status IN ({statusList})";
        await using var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false);
        var count = 0;
        foreach (var table in (string[])["history", "messages", "activities", "instances"])
        {
            // The shared command cache is for fixed texts; these vary with the filter, so plain commands.
            await using var cmd = scope.Transaction.Connection!.CreateCommand();
            cmd.Transaction = scope.Transaction;
            cmd.CommandText = $"DELETE FROM {table} WHERE instance_id IN ({selection})";
            foreach (var (name, value) in parameters) cmd.With(name, value);
            var n = await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
            if (table == "instances") count = n;
        }
        await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return count;
    }

    /// <summary>A page of instances by status, creation time and id prefix, ordered by instance id.</summary>
    public async Task<OrchestrationQueryResult> GetOrchestrationWithQueryAsync(OrchestrationQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.PageSize, 1);
        var sql = new StringBuilder("SELECT instance_id, state FROM instances WHERE 1 = 1");
        await using var connection = await _store.OpenReaderAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        if (query.RuntimeStatus is { Count: > 0 } statuses)
            sql.Append(" AND status IN (").Append(string.Join(", ", statuses.Select(s => ((int)s).ToString(System.Globalization.CultureInfo.InvariantCulture)))).Append(')');
        if (query.CreatedTimeFrom is { } from) { sql.Append(" AND created_at >= @from"); cmd.With("@from", from.ToUniversalTime().Ticks); }
        if (query.CreatedTimeTo is { } to) { sql.Append(" AND created_at <= @to"); cmd.With("@to", to.ToUniversalTime().Ticks); }
        if (!string.IsNullOrEmpty(query.InstanceIdPrefix))
        {
            sql.Append(" AND substr(instance_id, 1, @plen) = @prefix");
            cmd.With("@plen", query.InstanceIdPrefix.Length).With("@prefix", query.InstanceIdPrefix);
        }
        if (!string.IsNullOrEmpty(query.ContinuationToken)) { sql.Append(" AND instance_id > @after"); cmd.With("@after", query.ContinuationToken); }
        sql.Append(" ORDER BY instance_id LIMIT @n");
        cmd.With("@n", (long)query.PageSize + 1);
        cmd.CommandText = sql.ToString();
        var page = new List<OrchestrationState>();
        string? last = null;
        string? continuation = null;
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (page.Count == query.PageSize)
                {
                    continuation = last;
                    break;
                }
                last = reader.GetString(0);
                var state = MessageSerializer.DeserializeState(reader.GetString(1));
                page.Add(query.FetchInputsAndOutputs ? state : state.ClearFieldsImmutably(clearInput: true, clearOutput: true));
            }
        }
        return new OrchestrationQueryResult(page, continuation);
    }
}
