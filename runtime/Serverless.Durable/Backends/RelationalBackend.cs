using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Serverless.Durable.Core;
using Serverless.Durable.History;

namespace Serverless.Durable.Backends;

/// <summary>
/// The storage logic shared by the SQLite and PostgreSQL backends: four tables (instances,
/// history, messages, tasks), times as UTC ticks from the injected <see cref="TimeProvider"/>,
/// payloads as JSON text. Dialects supply connections, write transactions and the claim queries.
/// </summary>
internal abstract class RelationalBackend(TimeProvider timeProvider) : IOrchestrationBackend
{
    protected TimeProvider Time { get; } = timeProvider;

    public event Action? WorkEnqueued;

    public event Action<string>? InstanceFinished;

    protected DateTime UtcNow => Time.GetUtcNow().UtcDateTime;

    /// <summary>How long an abandoned episode waits before it may be claimed again.</summary>
    internal static readonly TimeSpan AbandonRetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>Qualified table name.</summary>
    protected abstract string T(string table);

    protected abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Starts a write transaction on a connection the scope owns or borrows (SQLite: the one writer connection, one transaction at a time).</summary>
    protected abstract ValueTask<WriteScope> BeginWriteAsync(CancellationToken cancellationToken);

    /// <summary>Suffix that row-locks a selected row until the transaction ends (" FOR UPDATE" or nothing).</summary>
    protected abstract string ForUpdate { get; }

    protected abstract string ClaimOrchestrationSql { get; }

    protected abstract string ClaimActivitiesSql { get; }

    public abstract Task InitializeAsync(CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    protected void OnWorkEnqueued() => WorkEnqueued?.Invoke();

    // ---- instances -----------------------------------------------------------------------

    public async Task CreateInstanceAsync(string instanceId, ExecutionStarted started, DateTime visibleAt, CancellationToken cancellationToken)
    {
        await using (var scope = await BeginWriteAsync(cancellationToken))
        {
            await CreateInstanceCoreAsync(scope.Transaction, instanceId, started, visibleAt, UtcNow, cancellationToken);
            await scope.Transaction.CommitAsync(cancellationToken);
        }
        OnWorkEnqueued();
    }

    private async Task CreateInstanceCoreAsync(DbTransaction tx, string instanceId, ExecutionStarted started, DateTime visibleAt, DateTime now, CancellationToken ct)
    {
        var existing = await ScalarAsync(tx, $"SELECT status FROM {T("instances")} WHERE instance_id = @id{ForUpdate}", ct, ("id", instanceId));
        if (existing is string statusText)
        {
            var status = Enum.Parse<OrchestrationRuntimeStatus>(statusText);
            if (!status.IsTerminal()) throw new OrchestrationAlreadyExistsException(instanceId, status);
            // Restart a finished instance under the same id: its old history and leftovers go.
            await ExecAsync(tx, $"DELETE FROM {T("history")} WHERE instance_id = @id", ct, ("id", instanceId));
            await ExecAsync(tx, $"DELETE FROM {T("messages")} WHERE instance_id = @id", ct, ("id", instanceId));
            await ExecAsync(tx, $"DELETE FROM {T("tasks")} WHERE instance_id = @id", ct, ("id", instanceId));
            await ExecAsync(tx, $"""
                UPDATE {T("instances")} SET execution_id = @exec, name = @name, status = 'Pending', input = @input, output = NULL,
                  custom_status = NULL, failure = NULL, created_at = @now, last_updated_at = @now, lock_token = NULL, lock_expires = NULL, history_count = 0
                WHERE instance_id = @id
                """, ct, ("id", instanceId), ("exec", started.ExecutionId), ("name", started.Name), ("input", started.Input), ("now", now.Ticks));
        }
        else
        {
            var inserted = await ExecAsync(tx, $"""
                INSERT INTO {T("instances")} (instance_id, execution_id, name, status, input, created_at, last_updated_at)
                VALUES (@id, @exec, @name, 'Pending', @input, @now, @now) ON CONFLICT (instance_id) DO NOTHING
                """, ct, ("id", instanceId), ("exec", started.ExecutionId), ("name", started.Name), ("input", started.Input), ("now", now.Ticks));
            if (inserted == 0) throw new OrchestrationAlreadyExistsException(instanceId, OrchestrationRuntimeStatus.Pending);
        }
        await InsertMessageAsync(tx, instanceId, started.ExecutionId, started, visibleAt, ct);
    }

    public async Task SendMessageAsync(string instanceId, HistoryEvent message, CancellationToken cancellationToken)
    {
        await using (var scope = await BeginWriteAsync(cancellationToken))
        {
            var exists = await ScalarAsync(scope.Transaction, $"SELECT 1 FROM {T("instances")} WHERE instance_id = @id", cancellationToken, ("id", instanceId));
            if (exists is null) throw new OrchestrationNotFoundException(instanceId);
            await InsertMessageAsync(scope.Transaction, instanceId, null, message, UtcNow, cancellationToken);
            await scope.Transaction.CommitAsync(cancellationToken);
        }
        OnWorkEnqueued();
    }

    private Task<int> InsertMessageAsync(DbTransaction tx, string instanceId, string? executionId, HistoryEvent e, DateTime visibleAt, CancellationToken ct) =>
        ExecAsync(tx, $"INSERT INTO {T("messages")} (instance_id, execution_id, is_control, visible_at, payload) VALUES (@id, @exec, @ctl, @vis, @payload)", ct,
            ("id", instanceId), ("exec", e.IsExecutionScoped ? executionId : null), ("ctl", e.IsControl ? 1 : 0), ("vis", visibleAt.Ticks), ("payload", Serialize(e)));

    // ---- orchestration episodes ----------------------------------------------------------

    async Task<IReadOnlyList<HistoryEvent>> IOrchestrationBackend.GetHistoryAsync(string instanceId, CancellationToken cancellationToken) =>
        await GetHistoryAsync(instanceId, cancellationToken);

    public async Task<OrchestrationWorkItem?> LockNextOrchestrationAsync(TimeSpan lease, CancellationToken cancellationToken,
        Func<string, string, long, IReadOnlyList<HistoryEvent>?>? cachedHistory = null)
    {
        var now = UtcNow;
        var token = Guid.NewGuid();
        var scope = await BeginWriteAsync(cancellationToken);
        await using var scopeGuard = scope;
        var tx = scope.Transaction;
        string instanceId, executionId, name, statusText;
        string? customStatus;
        long historyCount;
        await using (var claim = Command(tx, ClaimOrchestrationSql, ("now", now.Ticks), ("token", token.ToString("N")), ("exp", (now + lease).Ticks)))
        await using (var reader = await claim.ExecuteReaderAsync(cancellationToken))
        {
            if (!await reader.ReadAsync(cancellationToken)) return null;
            instanceId = reader.GetString(0);
            executionId = reader.GetString(1);
            name = reader.GetString(2);
            statusText = reader.GetString(3);
            customStatus = reader.IsDBNull(4) ? null : reader.GetString(4);
            historyCount = reader.GetInt64(5);
        }
        var messages = new List<OrchestrationMessage>();
        await using (var cmd = Command(tx, $"SELECT id, execution_id, payload FROM {T("messages")} WHERE instance_id = @id AND visible_at <= @now ORDER BY id",
            ("id", instanceId), ("now", now.Ticks)))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
                messages.Add(new OrchestrationMessage(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1), Deserialize(reader.GetString(2))));
        }
        await tx.CommitAsync(cancellationToken);
        await scope.DisposeAsync();
        // History changes only under the instance lock we now hold, so it is read outside the write transaction.
        var history = cachedHistory?.Invoke(instanceId, executionId, historyCount) ?? await GetHistoryAsync(instanceId, cancellationToken);
        return new OrchestrationWorkItem
        {
            InstanceId = instanceId,
            ExecutionId = executionId,
            Name = name,
            Status = Enum.Parse<OrchestrationRuntimeStatus>(statusText),
            CustomStatus = customStatus,
            LockToken = token,
            History = history,
            HistoryCount = historyCount,
            Messages = messages,
        };
    }

    public async Task CompleteOrchestrationAsync(OrchestrationWorkItem workItem, EpisodeOutcome outcome, CancellationToken cancellationToken)
    {
        var now = UtcNow;
        var id = workItem.InstanceId;
        var enqueued = false;
        await using (var scope = await BeginWriteAsync(cancellationToken))
        {
            var tx = scope.Transaction;
            var holder = await ScalarAsync(tx, $"SELECT lock_token FROM {T("instances")} WHERE instance_id = @id{ForUpdate}", cancellationToken, ("id", id));
            if (holder as string != workItem.LockToken.ToString("N"))
                throw new LeaseLostException($"orchestration '{id}'");

            var batch = new List<(string Sql, (string, object?)[] Parameters)>();
            for (var i = 0; i < workItem.Messages.Count; i++)
                if (outcome.Consumed[i])
                    batch.Add(($"DELETE FROM {T("messages")} WHERE id = @mid", [("mid", workItem.Messages[i].Id)]));

            var executionId = workItem.ExecutionId;
            long historyCount = outcome.ContinueAsNew is null ? workItem.History.Count + outcome.NewEvents.Count : 0;
            if (outcome.ContinueAsNew is { } next)
            {
                // The next execution starts from an empty history: eternal orchestrations stay bounded.
                batch.Add(($"DELETE FROM {T("history")} WHERE instance_id = @id", [("id", id)]));
                executionId = next.ExecutionId;
                batch.Add((MessageInsertSql, MessageParams(id, executionId, next, now)));
                foreach (var carried in outcome.CarriedOverEvents)
                    batch.Add((MessageInsertSql, MessageParams(id, executionId, carried, now)));
                enqueued = true;
            }
            else
            {
                var seq = workItem.History.Count;
                foreach (var e in outcome.NewEvents)
                    batch.Add(($"INSERT INTO {T("history")} (instance_id, seq, payload) VALUES (@id, @seq, @payload)", [("id", id), ("seq", (long)seq++), ("payload", Serialize(e))]));
            }
            foreach (var task in outcome.NewActivities)
            {
                batch.Add(($"INSERT INTO {T("tasks")} (instance_id, execution_id, task_id, name, payload, visible_at, dequeue_count) VALUES (@id, @exec, @tid, @name, @payload, @now, 0)",
                    [("id", id), ("exec", executionId), ("tid", (long)task.EventId), ("name", task.Name), ("payload", Serialize(task)), ("now", now.Ticks)]));
                enqueued = true;
            }
            foreach (var timer in outcome.NewTimers)
                batch.Add((MessageInsertSql, MessageParams(id, executionId, new TimerFired(timer.FireAt, timer.EventId, timer.FireAt), timer.FireAt)));
            foreach (var message in outcome.OutboundMessages)
            {
                batch.Add((MessageInsertSql, MessageParams(message.InstanceId, message.ExecutionId, message.Event, now)));
                enqueued = true;
            }
            if (!outcome.KeepInstanceState)
            {
                batch.Add(($"""
                    UPDATE {T("instances")} SET execution_id = @exec, status = @status, output = @output, custom_status = @custom, failure = @failure,
                      input = COALESCE(@input, input), last_updated_at = @now, lock_token = NULL, lock_expires = NULL, history_count = @hc
                    WHERE instance_id = @id
                    """,
                    [("hc", historyCount), ("id", id), ("exec", executionId), ("status", outcome.Status.ToString()), ("output", outcome.Output), ("custom", outcome.CustomStatus),
                     ("failure", outcome.Failure is null ? null : JsonSerializer.Serialize(outcome.Failure, DataConverter.Options)),
                     ("input", outcome.ContinueAsNew?.Input), ("now", now.Ticks)]));
            }
            else
            {
                batch.Add(($"UPDATE {T("instances")} SET lock_token = NULL, lock_expires = NULL, history_count = @hc WHERE instance_id = @id", [("hc", historyCount), ("id", id)]));
            }
            await ExecuteBatchAsync(tx, batch, cancellationToken);

            // Sub-orchestrations need a read-then-write each; they are rare next to the rest.
            foreach (var sub in outcome.NewSubOrchestrations)
            {
                try
                {
                    await CreateInstanceCoreAsync(tx, sub.InstanceId, sub.Started, now, now, cancellationToken);
                }
                catch (OrchestrationAlreadyExistsException ex)
                {
                    await InsertMessageAsync(tx, id, executionId, new SubOrchestrationInstanceFailed(now, sub.Started.Parent!.TaskScheduledId,
                        TaskFailureDetails.FromException(ex)), now, cancellationToken);
                }
                enqueued = true;
            }
            FaultInjection.Hit("episode-commit");
            await tx.CommitAsync(cancellationToken);
        }
        if (enqueued) OnWorkEnqueued();
        if (outcome.IsTerminal && !outcome.KeepInstanceState) InstanceFinished?.Invoke(id);
    }

    private string MessageInsertSql => $"INSERT INTO {T("messages")} (instance_id, execution_id, is_control, visible_at, payload) VALUES (@id, @exec, @ctl, @vis, @payload)";

    private static (string, object?)[] MessageParams(string instanceId, string? executionId, HistoryEvent e, DateTime visibleAt) =>
        [("id", instanceId), ("exec", e.IsExecutionScoped ? executionId : null), ("ctl", e.IsControl ? 1 : 0), ("vis", visibleAt.Ticks), ("payload", Serialize(e))];

    public async Task AbandonOrchestrationAsync(OrchestrationWorkItem workItem, CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        // Not at once: an episode that failed for a transient reason is retried after a pause, not in a hot loop.
        await ExecAsync(scope.Transaction, $"UPDATE {T("instances")} SET lock_token = NULL, lock_expires = @retry WHERE instance_id = @id AND lock_token = @token",
            cancellationToken, ("id", workItem.InstanceId), ("token", workItem.LockToken.ToString("N")), ("retry", (UtcNow + AbandonRetryDelay).Ticks));
        await scope.Transaction.CommitAsync(cancellationToken);
    }

    public async Task<bool> RenewOrchestrationLeaseAsync(OrchestrationWorkItem workItem, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        var n = await ExecAsync(scope.Transaction, $"UPDATE {T("instances")} SET lock_expires = @exp WHERE instance_id = @id AND lock_token = @token",
            cancellationToken, ("id", workItem.InstanceId), ("token", workItem.LockToken.ToString("N")), ("exp", (UtcNow + lease).Ticks));
        await scope.Transaction.CommitAsync(cancellationToken);
        return n == 1;
    }

    // ---- activities ----------------------------------------------------------------------

    public async Task<IReadOnlyList<ActivityWorkItem>> LockNextActivitiesAsync(int maxCount, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = UtcNow;
        var token = Guid.NewGuid();
        var items = new List<ActivityWorkItem>();
        await using var scope = await BeginWriteAsync(cancellationToken);
        await using (var cmd = Command(scope.Transaction, ClaimActivitiesSql, ("now", now.Ticks), ("token", token.ToString("N")), ("exp", (now + lease).Ticks), ("n", (long)maxCount)))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
                items.Add(new ActivityWorkItem(reader.GetInt64(0), reader.GetString(1), reader.GetString(2),
                    (TaskScheduled)Deserialize(reader.GetString(3)), token, (int)reader.GetInt64(4)));
        }
        await scope.Transaction.CommitAsync(cancellationToken);
        items.Sort((a, b) => a.Id.CompareTo(b.Id));
        return items;
    }

    public async Task CompleteActivitiesAsync(IReadOnlyList<(ActivityWorkItem WorkItem, HistoryEvent Result)> completions, CancellationToken cancellationToken)
    {
        if (completions.Count == 0) return;
        var now = UtcNow;
        await using (var scope = await BeginWriteAsync(cancellationToken))
        {
            var batch = new List<(string, (string, object?)[])>(completions.Count);
            foreach (var (item, result) in completions)
            {
                // Only the holder of the row's current lease may record the result: exactly once per scheduled task.
                batch.Add(($"""
                    INSERT INTO {T("messages")} (instance_id, execution_id, is_control, visible_at, payload)
                    SELECT @id, @exec, 0, @vis, @payload WHERE EXISTS (SELECT 1 FROM {T("tasks")} WHERE id = @tid AND lock_token = @token)
                    """, [("id", item.InstanceId), ("exec", item.ExecutionId), ("vis", now.Ticks), ("payload", Serialize(result)), ("tid", item.Id), ("token", item.LockToken.ToString("N"))]));
                batch.Add(($"DELETE FROM {T("tasks")} WHERE id = @tid AND lock_token = @token", [("tid", item.Id), ("token", item.LockToken.ToString("N"))]));
            }
            await ExecuteBatchAsync(scope.Transaction, batch, cancellationToken);
            FaultInjection.Hit("activity-commit");
            await scope.Transaction.CommitAsync(cancellationToken);
        }
        OnWorkEnqueued();
    }

    public async Task AbandonActivityAsync(ActivityWorkItem workItem, CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        await ExecAsync(scope.Transaction, $"UPDATE {T("tasks")} SET lock_token = NULL, lock_expires = NULL WHERE id = @tid AND lock_token = @token",
            cancellationToken, ("tid", workItem.Id), ("token", workItem.LockToken.ToString("N")));
        await scope.Transaction.CommitAsync(cancellationToken);
    }

    public async Task<bool> RenewActivityLeaseAsync(ActivityWorkItem workItem, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        var n = await ExecAsync(scope.Transaction, $"UPDATE {T("tasks")} SET lock_expires = @exp WHERE id = @tid AND lock_token = @token",
            cancellationToken, ("tid", workItem.Id), ("token", workItem.LockToken.ToString("N")), ("exp", (UtcNow + lease).Ticks));
        await scope.Transaction.CommitAsync(cancellationToken);
        return n == 1;
    }

    // ---- queries -------------------------------------------------------------------------

    private const string InstanceColumns = "instance_id, name, status, created_at, last_updated_at, input, output, custom_status, failure";

    private static OrchestrationMetadata ReadMetadata(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), Enum.Parse<OrchestrationRuntimeStatus>(r.GetString(2)),
        new DateTime(r.GetInt64(3), DateTimeKind.Utc), new DateTime(r.GetInt64(4), DateTimeKind.Utc),
        r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7),
        r.IsDBNull(8) ? null : JsonSerializer.Deserialize<TaskFailureDetails>(r.GetString(8), DataConverter.Options));

    public async Task<OrchestrationMetadata?> GetInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var cmd = Command(connection, null, $"SELECT {InstanceColumns} FROM {T("instances")} WHERE instance_id = @id", ("id", instanceId));
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadMetadata(reader) : null;
    }

    public async Task<List<HistoryEvent>> GetHistoryAsync(string instanceId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var cmd = Command(connection, null, $"SELECT payload FROM {T("history")} WHERE instance_id = @id ORDER BY seq", ("id", instanceId));
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var events = new List<HistoryEvent>();
        while (await reader.ReadAsync(cancellationToken)) events.Add(Deserialize(reader.GetString(0)));
        return events;
    }

    public async Task<OrchestrationQueryResult> QueryInstancesAsync(OrchestrationQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.PageSize, 1);
        var (where, parameters) = BuildFilter(query.Statuses, query.CreatedFrom, query.CreatedTo, query.InstanceIdPrefix);
        if (query.ContinuationToken is { } after)
        {
            where += " AND instance_id > @after";
            parameters.Add(("after", after));
        }
        parameters.Add(("n", (long)query.PageSize + 1));
        await using var connection = await OpenAsync(cancellationToken);
        await using var cmd = Command(connection, null, $"SELECT {InstanceColumns} FROM {T("instances")} WHERE {where} ORDER BY instance_id LIMIT @n", [.. parameters]);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var page = new List<OrchestrationMetadata>();
        while (await reader.ReadAsync(cancellationToken)) page.Add(ReadMetadata(reader));
        string? token = null;
        if (page.Count > query.PageSize)
        {
            page.RemoveAt(page.Count - 1);
            token = page[^1].InstanceId;
        }
        return new OrchestrationQueryResult(page, token);
    }

    private static (string Where, List<(string, object?)> Parameters) BuildFilter(
        IReadOnlyCollection<OrchestrationRuntimeStatus>? statuses, DateTime? from, DateTime? to, string? prefix)
    {
        var where = "1 = 1";
        var parameters = new List<(string, object?)>();
        if (statuses is { Count: > 0 })
        {
            var names = new List<string>();
            var i = 0;
            foreach (var s in statuses)
            {
                names.Add("@s" + i.ToString(CultureInfo.InvariantCulture));
                parameters.Add(("s" + i.ToString(CultureInfo.InvariantCulture), s.ToString()));
                i++;
            }
            where += $" AND status IN ({string.Join(", ", names)})";
        }
        if (from is { } f) { where += " AND created_at >= @from"; parameters.Add(("from", f.ToUniversalTime().Ticks)); }
        if (to is { } t) { where += " AND created_at < @to"; parameters.Add(("to", t.ToUniversalTime().Ticks)); }
        if (!string.IsNullOrEmpty(prefix))
        {
            where += " AND substr(instance_id, 1, @plen) = @prefix";
            parameters.Add(("plen", prefix.Length));
            parameters.Add(("prefix", prefix));
        }
        return (where, parameters);
    }

    public async Task<bool> PurgeInstanceAsync(string instanceId, CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        var purged = await PurgeCoreAsync(scope.Transaction, instanceId, cancellationToken);
        await scope.Transaction.CommitAsync(cancellationToken);
        return purged;
    }

    private async Task<bool> PurgeCoreAsync(DbTransaction tx, string instanceId, CancellationToken ct)
    {
        var status = await ScalarAsync(tx, $"SELECT status FROM {T("instances")} WHERE instance_id = @id{ForUpdate}", ct, ("id", instanceId));
        if (status is not string s || !Enum.Parse<OrchestrationRuntimeStatus>(s).IsTerminal()) return false;
        await ExecuteBatchAsync(tx, [
            ($"DELETE FROM {T("history")} WHERE instance_id = @id", [("id", instanceId)]),
            ($"DELETE FROM {T("messages")} WHERE instance_id = @id", [("id", instanceId)]),
            ($"DELETE FROM {T("tasks")} WHERE instance_id = @id", [("id", instanceId)]),
            ($"DELETE FROM {T("instances")} WHERE instance_id = @id", [("id", instanceId)]),
        ], ct);
        return true;
    }

    public async Task<int> PurgeInstancesAsync(PurgeInstancesFilter filter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var terminal = new[] { OrchestrationRuntimeStatus.Completed, OrchestrationRuntimeStatus.Failed, OrchestrationRuntimeStatus.Terminated };
        var statuses = filter.Statuses is { Count: > 0 } given ? given.Where(s => s.IsTerminal()).ToArray() : terminal;
        if (statuses.Length == 0) return 0;
        var (where, parameters) = BuildFilter(statuses, filter.CreatedFrom, filter.CreatedTo, null);
        await using var scope = await BeginWriteAsync(cancellationToken);
        var ids = new List<string>();
        await using (var cmd = Command(scope.Transaction, $"SELECT instance_id FROM {T("instances")} WHERE {where}", [.. parameters]))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken)) ids.Add(reader.GetString(0));
        }
        var count = 0;
        foreach (var id in ids)
            if (await PurgeCoreAsync(scope.Transaction, id, cancellationToken)) count++;
        await scope.Transaction.CommitAsync(cancellationToken);
        return count;
    }

    // ---- plumbing ------------------------------------------------------------------------

    protected static string Serialize(HistoryEvent e) => JsonSerializer.Serialize(e, DataConverter.Options);

    protected static HistoryEvent Deserialize(string json) =>
        JsonSerializer.Deserialize<HistoryEvent>(json, DataConverter.Options) ?? throw new InvalidDataException("A stored history event was null.");

    protected DbCommand Command(DbTransaction tx, string sql, params (string Name, object? Value)[] parameters) =>
        Command(tx.Connection!, tx, sql, parameters);

    /// <summary>A command for <paramref name="sql"/> with no parameters yet (SQLite reuses prepared ones on its writer connection).</summary>
    protected virtual DbCommand CreateCommand(DbConnection connection, DbTransaction? tx, string sql)
    {
        var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    protected DbCommand Command(DbConnection connection, DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = CreateCommand(connection, tx, sql);
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            if (value is null) p.DbType = System.Data.DbType.String;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    protected async Task<int> ExecAsync(DbTransaction tx, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = Command(tx, sql, parameters);
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    protected async Task<object?> ScalarAsync(DbTransaction tx, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = Command(tx, sql, parameters);
        var value = await cmd.ExecuteScalarAsync(ct);
        return value is DBNull ? null : value;
    }

    /// <summary>Runs statements in order inside <paramref name="tx"/> (PostgreSQL: in one round trip).</summary>
    protected virtual async Task ExecuteBatchAsync(DbTransaction tx, IReadOnlyList<(string Sql, (string, object?)[] Parameters)> statements, CancellationToken ct)
    {
        foreach (var (sql, parameters) in statements)
        {
            await using var cmd = Command(tx, sql, parameters);
            await cmd.ExecuteNonQueryAsync(ct);
        }
    }

    /// <summary>A write transaction plus whatever must be released with it.</summary>
    protected sealed class WriteScope(DbTransaction transaction, Func<ValueTask> release) : IAsyncDisposable
    {
        public DbTransaction Transaction { get; } = transaction;

        private bool _disposed;

        /// <summary>Idempotent: a scope may be ended early and then again by its <c>await using</c>.</summary>
        public async ValueTask DisposeAsync()
        {
            if (_disposed) return;
            _disposed = true;
            try { await Transaction.DisposeAsync(); }
            finally { await release(); }
        }
    }
}
