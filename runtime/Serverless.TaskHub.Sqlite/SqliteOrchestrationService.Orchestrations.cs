using DurableTask.Core.Exceptions;

namespace Serverless.TaskHub.Sqlite;

public sealed partial class SqliteOrchestrationService
{
    private const string ClaimInstanceSql = """
        UPDATE instances SET lock_token = @token, lock_expires = @exp
        WHERE instance_id = (
          SELECT m.instance_id FROM messages m JOIN instances i ON i.instance_id = m.instance_id
          WHERE m.visible_at <= @now AND (i.lock_expires IS NULL OR i.lock_expires < @now)
          ORDER BY m.visible_at LIMIT 1)
        RETURNING instance_id, execution_id, status, history_count
        """;

    private const string NextDueSql = "SELECT MIN(visible_at) FROM messages WHERE visible_at > @now";

    private const string InboxSql = "SELECT id, payload FROM messages WHERE instance_id = @id AND visible_at <= @now ORDER BY id";

    private const string HistorySql = "SELECT payload FROM history WHERE instance_id = @id ORDER BY seq";

    private const string DeleteConsumedSql = "DELETE FROM messages WHERE instance_id = @id AND id <= @max AND visible_at <= @at";

    private const string UnlockSql = "UPDATE instances SET lock_token = NULL, lock_expires = NULL WHERE instance_id = @id AND lock_token = @token";

    private const string InsertMessageSql = """
        INSERT INTO messages (instance_id, visible_at, payload)
        SELECT @id, @vis, @payload WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = @id)
        """;

    private const string InsertActivitySql = "INSERT INTO activities (instance_id, visible_at, payload) VALUES (@id, @vis, @payload)";

    private const string InsertHistorySql = "INSERT INTO history (instance_id, seq, payload) VALUES (@id, @seq, @payload)";

    public Task<TaskOrchestrationWorkItem> LockNextTaskOrchestrationWorkItemAsync(TimeSpan receiveTimeout, CancellationToken cancellationToken) =>
        WaitForWorkAsync<TaskOrchestrationWorkItem>(_orchestrationWork, TryLockOrchestrationAsync, receiveTimeout, cancellationToken)!;

    /// <summary>
    /// One claim transaction: lease the instance whose inbox has the oldest due message, read
    /// its due messages and its history. Messages for an instance that already ended are
    /// dropped here (late activity results after a terminate, say) and the next instance is tried.
    /// </summary>
    private async Task<(TaskOrchestrationWorkItem? Item, long NextDueTicks)> TryLockOrchestrationAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var now = UtcNow;
            var token = _owners.NewToken();
            var expires = now + _options.WorkItemLockTimeout;
            await using var scope = await _store.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
            string instanceId, executionId;
            OrchestrationStatus status;
            int historyCount;
            await using (var reader = await scope.Command(ClaimInstanceSql).With("@token", token).With("@exp", expires.Ticks).With("@now", now.Ticks)
                             .ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    await reader.DisposeAsync().ConfigureAwait(false);
                    var next = await scope.Command(NextDueSql).With("@now", now.Ticks).ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    return (null, next is long ticks ? ticks : long.MaxValue);
                }
                instanceId = reader.GetString(0);
                executionId = reader.GetString(1);
                status = (OrchestrationStatus)reader.GetInt64(2);
                historyCount = checked((int)reader.GetInt64(3));
            }

            var messages = new List<TaskMessage>();
            long maxId = 0;
            await using (var reader = await scope.Command(InboxSql).With("@id", instanceId).With("@now", now.Ticks).ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    maxId = reader.GetInt64(0);
                    messages.Add(MessageSerializer.DeserializeMessage(reader.GetString(1)));
                }
            }

            if (IsTerminal(status))
            {
                await scope.Command(DeleteConsumedSql).With("@id", instanceId).With("@max", maxId).With("@at", now.Ticks).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await scope.Command(UnlockSql).With("@id", instanceId).With("@token", token).ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await scope.CommitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var history = new List<HistoryEvent>(historyCount + messages.Count + 4);
            if (historyCount > 0 && _historyCache.TryGet(instanceId, executionId, historyCount, out var cached))
            {
                history.AddRange(cached);
            }
            else if (historyCount > 0)
            {
                await using var reader = await scope.Command(HistorySql).With("@id", instanceId).ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    history.Add(MessageSerializer.DeserializeEvent(reader.GetString(0)));
            }
            if (history.Count != historyCount)
                throw new InvalidDataException($"Instance '{instanceId}' has {history.Count} history rows where its state says {historyCount}.");
            await scope.CommitAsync(cancellationToken).ConfigureAwait(false);

            return (new SqliteOrchestrationWorkItem
            {
                InstanceId = instanceId,
                OrchestrationRuntimeState = new OrchestrationRuntimeState(history),
                NewMessages = messages,
                LockedUntilUtc = expires,
                LockToken = token,
                MaxMessageId = maxId,
                LockedAtTicks = now.Ticks,
                LoadedExecutionId = historyCount > 0 ? executionId : null,
                LoadedHistoryCount = historyCount,
            }, 0);
        }
    }

    public async Task RenewTaskOrchestrationWorkItemLockAsync(TaskOrchestrationWorkItem workItem)
    {
        var item = Ours(workItem);
        var expires = UtcNow + _options.WorkItemLockTimeout;
        await using var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false);
        var n = await scope.Command("UPDATE instances SET lock_expires = @exp WHERE instance_id = @id AND lock_token = @token")
            .With("@exp", expires.Ticks).With("@id", item.InstanceId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
        await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        if (n == 0) throw LeaseLost(item.InstanceId);
        item.LockedUntilUtc = expires;
    }

    /// <summary>
    /// The checkpoint, in ONE transaction: refuse unless this work item still holds the
    /// instance's lease; append the new history (or replace it for a new execution); delete the
    /// consumed inbox messages; enqueue activities, timers (visible at FireAt) and messages to
    /// other instances (creating sub-orchestrations); write the instance state; release the lease.
    /// </summary>
    public async Task CompleteTaskOrchestrationWorkItemAsync(
        TaskOrchestrationWorkItem workItem,
        OrchestrationRuntimeState newOrchestrationRuntimeState,
        IList<TaskMessage> outboundMessages,
        IList<TaskMessage> orchestratorMessages,
        IList<TaskMessage> timerMessages,
        TaskMessage continuedAsNewMessage,
        OrchestrationState orchestrationState)
    {
        var item = Ours(workItem);
        ArgumentNullException.ThrowIfNull(newOrchestrationRuntimeState);
        var now = UtcNow;
        var instanceId = item.InstanceId;
        var signalOrchestrations = false;
        await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
        {
            var holder = await scope.Command("SELECT lock_token FROM instances WHERE instance_id = @id").With("@id", instanceId)
                .ExecuteScalarAsync().ConfigureAwait(false);
            if (holder is not string current || !string.Equals(current, item.LockToken, StringComparison.Ordinal))
                throw LeaseLost(instanceId);

            var executionId = newOrchestrationRuntimeState.OrchestrationInstance?.ExecutionId;
            var append = string.Equals(executionId, item.LoadedExecutionId ?? executionId, StringComparison.Ordinal)
                         && newOrchestrationRuntimeState.PastEvents.Count == item.LoadedHistoryCount;
            IList<HistoryEvent> toWrite;
            int seq;
            if (append)
            {
                toWrite = newOrchestrationRuntimeState.NewEvents;
                seq = item.LoadedHistoryCount;
            }
            else
            {
                await scope.Command("DELETE FROM history WHERE instance_id = @id").With("@id", instanceId).ExecuteNonQueryAsync().ConfigureAwait(false);
                toWrite = newOrchestrationRuntimeState.Events;
                seq = 0;
            }
            foreach (var e in toWrite)
                await scope.Command(InsertHistorySql).With("@id", instanceId).With("@seq", seq++).With("@payload", MessageSerializer.Serialize(e))
                    .ExecuteNonQueryAsync().ConfigureAwait(false);

            await scope.Command(DeleteConsumedSql).With("@id", instanceId).With("@max", item.MaxMessageId).With("@at", item.LockedAtTicks)
                .ExecuteNonQueryAsync().ConfigureAwait(false);

            foreach (var m in outboundMessages)
                await scope.Command(InsertActivitySql).With("@id", m.OrchestrationInstance.InstanceId).With("@vis", now.Ticks)
                    .With("@payload", MessageSerializer.Serialize(m)).ExecuteNonQueryAsync().ConfigureAwait(false);

            foreach (var m in timerMessages)
            {
                var fireAt = m.Event is TimerFiredEvent fired ? fired.FireAt.ToUniversalTime() : now;
                await scope.Command(InsertMessageSql).With("@id", m.OrchestrationInstance.InstanceId).With("@vis", fireAt.Ticks)
                    .With("@payload", MessageSerializer.Serialize(m)).ExecuteNonQueryAsync().ConfigureAwait(false);
                signalOrchestrations = true;
            }

            foreach (var m in orchestratorMessages)
            {
                if (m.Event is ExecutionStartedEvent)
                    await CreateInstanceCoreAsync(scope, m, dedupeStatuses: null, fromOrchestration: true, now).ConfigureAwait(false);
                else
                    await scope.Command(InsertMessageSql).With("@id", m.OrchestrationInstance.InstanceId).With("@vis", now.Ticks)
                        .With("@payload", MessageSerializer.Serialize(m)).ExecuteNonQueryAsync().ConfigureAwait(false);
                signalOrchestrations = true;
            }

            if (continuedAsNewMessage is not null)
            {
                await scope.Command(InsertMessageSql).With("@id", instanceId).With("@vis", now.Ticks)
                    .With("@payload", MessageSerializer.Serialize(continuedAsNewMessage)).ExecuteNonQueryAsync().ConfigureAwait(false);
                signalOrchestrations = true;
            }

            var historyCount = append ? item.LoadedHistoryCount + toWrite.Count : toWrite.Count;
            if (orchestrationState is not null)
            {
                orchestrationState.LastUpdatedTime = now;
                var terminal = IsTerminal(orchestrationState.OrchestrationStatus);
                await scope.Command("""
                        UPDATE instances SET execution_id = @exec, status = @status, state = @state, last_updated_at = @now,
                          completed_at = @completed, history_count = @count, lock_token = NULL, lock_expires = NULL
                        WHERE instance_id = @id
                        """)
                    .With("@exec", orchestrationState.OrchestrationInstance?.ExecutionId ?? executionId ?? "")
                    .With("@status", (long)orchestrationState.OrchestrationStatus)
                    .With("@state", MessageSerializer.Serialize(orchestrationState))
                    .With("@now", now.Ticks)
                    .With("@completed", terminal ? (orchestrationState.CompletedTime == default ? now : orchestrationState.CompletedTime.ToUniversalTime()).Ticks : null)
                    .With("@count", historyCount)
                    .With("@id", instanceId)
                    .ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            else
            {
                await scope.Command("UPDATE instances SET history_count = @count, last_updated_at = @now, lock_token = NULL, lock_expires = NULL WHERE instance_id = @id")
                    .With("@count", historyCount).With("@now", now.Ticks).With("@id", instanceId).ExecuteNonQueryAsync().ConfigureAwait(false);
            }

            await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        item.Checkpointed = true;
        if (orchestrationState is not null && IsTerminal(orchestrationState.OrchestrationStatus))
            _historyCache.Remove(instanceId);
        else
            _historyCache.Set(instanceId, newOrchestrationRuntimeState.OrchestrationInstance?.ExecutionId ?? "", newOrchestrationRuntimeState.Events);
        if (outboundMessages.Count > 0) _activityWork.Set();
        if (signalOrchestrations) _orchestrationWork.Set();
        _instanceChanged.Set();
    }

    public async Task AbandonTaskOrchestrationWorkItemAsync(TaskOrchestrationWorkItem workItem)
    {
        var item = Ours(workItem);
        if (item.Checkpointed) return;
        await using var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false);
        await scope.Command("UPDATE instances SET lock_token = NULL, lock_expires = @retry WHERE instance_id = @id AND lock_token = @token")
            .With("@retry", (UtcNow + AbandonDelay).Ticks).With("@id", item.InstanceId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
        await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>The checkpoint already released the lease; this releases it only for a work item that never checkpointed.</summary>
    public async Task ReleaseTaskOrchestrationWorkItemAsync(TaskOrchestrationWorkItem workItem)
    {
        var item = Ours(workItem);
        if (item.Checkpointed) return;
        await using var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false);
        await scope.Command(UnlockSql).With("@id", item.InstanceId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
        await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        _orchestrationWork.Set();
    }

    /// <summary>
    /// Creates (or, when it has ended, restarts) the instance a start message names and queues
    /// the message, visible at its scheduled start time. Returns false when a live instance of
    /// that id exists and the start came from an orchestration (the message is then dropped).
    /// </summary>
    private static async Task<bool> CreateInstanceCoreAsync(WriteScope scope, TaskMessage message, OrchestrationStatus[]? dedupeStatuses, bool fromOrchestration, DateTime now)
    {
        var started = (ExecutionStartedEvent)message.Event;
        var instance = message.OrchestrationInstance;
        var existing = await scope.Command("SELECT status FROM instances WHERE instance_id = @id").With("@id", instance.InstanceId)
            .ExecuteScalarAsync().ConfigureAwait(false);
        var state = new OrchestrationState
        {
            OrchestrationInstance = new OrchestrationInstance { InstanceId = instance.InstanceId, ExecutionId = instance.ExecutionId },
            Name = started.Name,
            Version = started.Version,
            Input = started.Input,
            Tags = started.Tags,
            ParentInstance = started.ParentInstance,
            ScheduledStartTime = started.ScheduledStartTime,
            Generation = started.Generation,
            OrchestrationStatus = OrchestrationStatus.Pending,
            CreatedTime = now,
            LastUpdatedTime = now,
            CompletedTime = DateTime.MinValue,
        };
        var stateJson = MessageSerializer.Serialize(state);
        if (existing is long statusValue)
        {
            var status = (OrchestrationStatus)statusValue;
            if (dedupeStatuses is not null && Array.IndexOf(dedupeStatuses, status) >= 0 || !IsTerminal(status))
            {
                if (fromOrchestration) return false;
                throw new OrchestrationAlreadyExistsException($"An orchestration with id '{instance.InstanceId}' already exists ({status}).");
            }
            foreach (var table in InstanceRowTables)
                await scope.Command($"DELETE FROM {table} WHERE instance_id = @id").With("@id", instance.InstanceId).ExecuteNonQueryAsync().ConfigureAwait(false);
            await scope.Command("""
                    UPDATE instances SET execution_id = @exec, status = @status, state = @state, created_at = @now, last_updated_at = @now,
                      completed_at = NULL, history_count = 0, lock_token = NULL, lock_expires = NULL
                    WHERE instance_id = @id
                    """)
                .With("@exec", instance.ExecutionId ?? "").With("@status", (long)OrchestrationStatus.Pending).With("@state", stateJson)
                .With("@now", now.Ticks).With("@id", instance.InstanceId).ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        else
        {
            await scope.Command("""
                    INSERT INTO instances (instance_id, execution_id, status, state, created_at, last_updated_at)
                    VALUES (@id, @exec, @status, @state, @now, @now)
                    """)
                .With("@id", instance.InstanceId).With("@exec", instance.ExecutionId ?? "").With("@status", (long)OrchestrationStatus.Pending)
                .With("@state", stateJson).With("@now", now.Ticks).ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        var visibleAt = started.ScheduledStartTime is { } at && at.ToUniversalTime() > now ? at.ToUniversalTime() : now;
        await scope.Command(InsertMessageSql).With("@id", instance.InstanceId).With("@vis", visibleAt.Ticks)
            .With("@payload", MessageSerializer.Serialize(message)).ExecuteNonQueryAsync().ConfigureAwait(false);
        return true;
    }

    /// <summary>The tables besides instances that hold rows of an instance.</summary>
    private static readonly string[] InstanceRowTables = ["history", "messages", "activities"];

    private static bool IsTerminal(OrchestrationStatus status) => status is OrchestrationStatus.Completed or OrchestrationStatus.Failed
        or OrchestrationStatus.Terminated or OrchestrationStatus.Canceled;

    private static SessionAbortedException LeaseLost(string instanceId) =>
        new($"The lease on orchestration '{instanceId}' was lost (it expired and another worker took it, or the store was closed); this completion is refused.");

    private static SqliteOrchestrationWorkItem Ours(TaskOrchestrationWorkItem workItem) =>
        workItem as SqliteOrchestrationWorkItem ?? throw new ArgumentException("The work item was not locked by a SqliteOrchestrationService.", nameof(workItem));
}
