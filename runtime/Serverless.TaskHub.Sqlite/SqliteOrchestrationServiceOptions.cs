namespace Serverless.TaskHub.Sqlite;

/// <summary>
/// Settings of a <see cref="SqliteOrchestrationService"/>: one task hub in one SQLite file.
/// </summary>
public sealed record SqliteOrchestrationServiceOptions
{
    /// <summary>Path of the SQLite file (created with its folder when missing).</summary>
    public required string DataSource { get; init; }

    /// <summary>The task hub's name, stored in the file: a file made for another hub is refused.</summary>
    public string TaskHubName { get; init; } = "default";

    /// <summary>
    /// How long a locked orchestration or activity work item stays leased to its worker. After a
    /// crash, its messages are delivered again once this has passed; a live worker renews it.
    /// </summary>
    public TimeSpan WorkItemLockTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How many orchestration episodes a worker runs at once.</summary>
    public int MaxConcurrentOrchestrations { get; init; } = 4 * Environment.ProcessorCount;

    /// <summary>How many activities a worker runs at once.</summary>
    public int MaxConcurrentActivities { get; init; } = 4 * Environment.ProcessorCount;

    /// <summary>
    /// How often an idle worker looks for work when no signal comes. Work enqueued by this
    /// process wakes its waiting workers at once; polling finds work from other processes and
    /// is bounded by the next due timer.
    /// </summary>
    public TimeSpan PollingInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// <c>false</c> (default): WAL with <c>synchronous=NORMAL</c>; a commit survives a process
    /// crash, an OS crash or power loss may lose the last ones. <c>true</c>: fsync every commit.
    /// </summary>
    public bool SyncEveryCommit { get; init; }

    /// <summary>The clock for leases and message visibility (tests inject one).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(DataSource);
        ArgumentException.ThrowIfNullOrWhiteSpace(TaskHubName);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(WorkItemLockTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentOrchestrations, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentActivities, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(PollingInterval, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(TimeProvider);
    }
}
