namespace Serverless.TaskHub.Sqlite;

/// <summary>
/// An orchestration work item with what its checkpoint needs to find again: the lease token it
/// was locked under, which inbox messages it consumed, and the history it was given.
/// </summary>
internal sealed class SqliteOrchestrationWorkItem : TaskOrchestrationWorkItem
{
    public required string LockToken { get; init; }

    /// <summary>The inbox messages consumed are exactly those with id &lt;= this and visible at <see cref="LockedAtTicks"/>.</summary>
    public required long MaxMessageId { get; init; }

    public required long LockedAtTicks { get; init; }

    /// <summary>The execution whose history was loaded (null for an instance's first episode).</summary>
    public required string? LoadedExecutionId { get; init; }

    public required int LoadedHistoryCount { get; init; }

    /// <summary>Set once the checkpoint committed (it also released the lease).</summary>
    public bool Checkpointed { get; set; }
}

/// <summary>An activity work item and the lease token it was locked under.</summary>
internal sealed class SqliteActivityWorkItem : TaskActivityWorkItem
{
    public required long RowId { get; init; }

    public required string LockToken { get; init; }
}
