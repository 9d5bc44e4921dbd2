using DurableTask.Core.Exceptions;

namespace Serverless.TaskHub.Sqlite;

public sealed partial class SqliteOrchestrationService
{
    private const string ClaimActivitySql = """
        UPDATE activities SET lock_token = @token, lock_expires = @exp, dequeue_count = dequeue_count + 1
        WHERE id = (SELECT id FROM activities WHERE visible_at <= @now AND (lock_expires IS NULL OR lock_expires < @now) ORDER BY id LIMIT 1)
        RETURNING id, payload
        """;

    public Task<TaskActivityWorkItem> LockNextTaskActivityWorkItem(TimeSpan receiveTimeout, CancellationToken cancellationToken) =>
        WaitForWorkAsync<TaskActivityWorkItem>(_activityWork, TryLockActivityAsync, receiveTimeout, cancellationToken)!;

    private async Task<(TaskActivityWorkItem? Item, long NextDueTicks)> TryLockActivityAsync(CancellationToken cancellationToken)
    {
        var now = UtcNow;
        var token = _owners.NewToken();
        var expires = now + _options.WorkItemLockTimeout;
        await using var scope = await _store.BeginWriteAsync(cancellationToken).ConfigureAwait(false);
        long rowId;
        string payload;
        await using (var reader = await scope.Command(ClaimActivitySql).With("@token", token).With("@exp", expires.Ticks).With("@now", now.Ticks)
                         .ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // Activities are visible when enqueued; an abandoned or expired lease is found by polling.
                return (null, long.MaxValue);
            }
            rowId = reader.GetInt64(0);
            payload = reader.GetString(1);
        }
        await scope.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (new SqliteActivityWorkItem
        {
            Id = rowId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            RowId = rowId,
            LockToken = token,
            LockedUntilUtc = expires,
            TaskMessage = MessageSerializer.DeserializeMessage(payload),
        }, 0);
    }

    public async Task<TaskActivityWorkItem> RenewTaskActivityWorkItemLockAsync(TaskActivityWorkItem workItem)
    {
        var item = Ours(workItem);
        var expires = UtcNow + _options.WorkItemLockTimeout;
        await using var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false);
        var n = await scope.Command("UPDATE activities SET lock_expires = @exp WHERE id = @rid AND lock_token = @token")
            .With("@exp", expires.Ticks).With("@rid", item.RowId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
        await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        if (n == 0) throw ActivityLeaseLost(item);
        item.LockedUntilUtc = expires;
        return item;
    }

    /// <summary>
    /// One transaction: the activity row leaves the queue and its result enters the
    /// orchestration's inbox, only if this work item still holds the row's lease (else refused:
    /// whoever holds it now reports the result, so it is recorded once).
    /// </summary>
    public async Task CompleteTaskActivityWorkItemAsync(TaskActivityWorkItem workItem, TaskMessage responseMessage)
    {
        var item = Ours(workItem);
        ArgumentNullException.ThrowIfNull(responseMessage);
        var now = UtcNow;
        await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
        {
            var n = await scope.Command("DELETE FROM activities WHERE id = @rid AND lock_token = @token")
                .With("@rid", item.RowId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
            if (n == 0) throw ActivityLeaseLost(item);
            await scope.Command(InsertMessageSql).With("@id", responseMessage.OrchestrationInstance.InstanceId).With("@vis", now.Ticks)
                .With("@payload", MessageSerializer.Serialize(responseMessage)).ExecuteNonQueryAsync().ConfigureAwait(false);
            await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        _orchestrationWork.Set();
    }

    public async Task AbandonTaskActivityWorkItemAsync(TaskActivityWorkItem workItem)
    {
        var item = Ours(workItem);
        await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
        {
            await scope.Command("UPDATE activities SET lock_token = NULL, lock_expires = @retry WHERE id = @rid AND lock_token = @token")
                .With("@retry", (UtcNow + AbandonDelay).Ticks).With("@rid", item.RowId).With("@token", item.LockToken).ExecuteNonQueryAsync().ConfigureAwait(false);
            await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static SessionAbortedException ActivityLeaseLost(SqliteActivityWorkItem item) =>
        new($"The lease on activity work item {item.Id} was lost (it expired and another worker took it, or the store was closed); this completion is refused.");

    private static SqliteActivityWorkItem Ours(TaskActivityWorkItem workItem) =>
        workItem as SqliteActivityWorkItem ?? throw new ArgumentException("The work item was not locked by a SqliteOrchestrationService.", nameof(workItem));
}
