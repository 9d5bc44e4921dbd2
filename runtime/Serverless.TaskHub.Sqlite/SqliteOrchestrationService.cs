using DurableTask.Core.Query;

namespace Serverless.TaskHub.Sqlite;

/// <summary>
/// A DurableTask.Core orchestration service on one SQLite file: the embedded default backend
/// of the local Functions host. Every orchestration checkpoint (new history, activity, timer
/// and orchestrator messages, the instance state) is one SQLite transaction; orchestration and
/// activity work items are leased and delivered again after their lease expires; a completion
/// under a lost lease is refused with <see cref="DurableTask.Core.Exceptions.SessionAbortedException"/>.
/// One instance per process and file; several processes may share a file. An instance that starts releases
/// at once the leases of instances whose process has died (<see cref="LeaseOwners"/>); a live one's leases
/// are only ever taken over once they expire.
/// </summary>
public sealed partial class SqliteOrchestrationService :
    IOrchestrationService, IOrchestrationServiceClient, IOrchestrationServicePurgeClient, IOrchestrationServiceQueryClient, IAsyncDisposable, IDisposable
{
    /// <summary>How long an abandoned work item waits before it is delivered again.</summary>
    internal static readonly TimeSpan AbandonDelay = TimeSpan.FromSeconds(1);

    private readonly SqliteOrchestrationServiceOptions _options;
    private readonly SqliteStore _store;
    private readonly TimeProvider _time;
    private readonly WorkSignal _orchestrationWork = new();
    private readonly WorkSignal _activityWork = new();
    private readonly WorkSignal _instanceChanged = new();
    private readonly HistoryCache _historyCache = new();
    private readonly LeaseOwners _owners;
    private CancellationTokenSource _stopping = new();

    public SqliteOrchestrationService(SqliteOrchestrationServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = options.TimeProvider;
        _store = new SqliteStore(options);
        _owners = new LeaseOwners(options.DataSource);
    }

    /// <summary>The options this service was made with.</summary>
    public SqliteOrchestrationServiceOptions Options => _options;

    private DateTime UtcNow => _time.GetUtcNow().UtcDateTime;

    // ---- lifecycle -----------------------------------------------------------------------

    public async Task StartAsync()
    {
        if (_stopping.IsCancellationRequested) _stopping = new CancellationTokenSource();
        await _store.EnsureSchemaAsync(recreate: false, CancellationToken.None).ConfigureAwait(false);
        await ReleaseDeadOwnersLeasesAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Makes the work items a crashed instance held deliverable now. Their messages were never consumed (a
    /// checkpoint deletes them in the same transaction that records its results), so nothing is lost, and an
    /// activity that was running is run again: activities are at-least-once.
    /// </summary>
    private async Task ReleaseDeadOwnersLeasesAsync()
    {
        foreach (var (id, handle) in _owners.FindDead())
        {
            await using (var scope = await _store.BeginWriteAsync(CancellationToken.None).ConfigureAwait(false))
            {
                foreach (var table in new[] { "instances", "activities" })
                {
                    await scope.Command($"UPDATE {table} SET lock_token = NULL, lock_expires = NULL WHERE lock_token LIKE @owner")
                        .With("@owner", LeaseOwners.TokenPattern(id)).ExecuteNonQueryAsync().ConfigureAwait(false);
                }
                await scope.CommitAsync(CancellationToken.None).ConfigureAwait(false);
            }
            _owners.Forget(id, handle);
        }
        _orchestrationWork.Set();
        _activityWork.Set();
    }

    public Task StopAsync() => StopAsync(isForced: false);

    /// <summary>Wakes every waiting LockNext* call, which then returns no work item.</summary>
    public Task StopAsync(bool isForced)
    {
        _stopping.Cancel();
        return Task.CompletedTask;
    }

    public Task CreateAsync() => CreateAsync(recreateInstanceStore: true);

    public Task CreateAsync(bool recreateInstanceStore) => _store.EnsureSchemaAsync(recreateInstanceStore, CancellationToken.None);

    public Task CreateIfNotExistsAsync() => _store.EnsureSchemaAsync(recreate: false, CancellationToken.None);

    public Task DeleteAsync() => DeleteAsync(deleteInstanceStore: true);

    public Task DeleteAsync(bool deleteInstanceStore) => _store.DropAsync(CancellationToken.None);

    /// <summary>Closes the file without releasing any lease: to other workers this looks like a crash, and they take over after the lease expires.</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        await _store.DisposeAsync().ConfigureAwait(false);
        _owners.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    // ---- settings DurableTask.Core reads -------------------------------------------------

    public bool IsMaxMessageCountExceeded(int currentMessageCount, OrchestrationRuntimeState runtimeState) => false;

    public int GetDelayInSecondsAfterOnProcessException(Exception exception) => 0;

    public int GetDelayInSecondsAfterOnFetchException(Exception exception) => 1;

    /// <summary>One fetch loop each: a fetch is a single short transaction; the episodes themselves run concurrently.</summary>
    public int TaskOrchestrationDispatcherCount => 1;

    public int MaxConcurrentTaskOrchestrationWorkItems => _options.MaxConcurrentOrchestrations;

    /// <summary>External events not yet consumed move on to the next generation, as in DurableTask.AzureStorage.</summary>
    public BehaviorOnContinueAsNew EventBehaviourForContinueAsNew => BehaviorOnContinueAsNew.Carryover;

    public int TaskActivityDispatcherCount => 1;

    public int MaxConcurrentTaskActivityWorkItems => _options.MaxConcurrentActivities;

    // ---- waiting for work ----------------------------------------------------------------

    /// <summary>
    /// Tries <paramref name="tryLock"/> until it yields an item, <paramref name="receiveTimeout"/>
    /// passes or the service stops (then null). Between tries it sleeps until this process
    /// enqueues work (<paramref name="signal"/>), the next message is due, or the polling interval passes.
    /// </summary>
    private async Task<T?> WaitForWorkAsync<T>(WorkSignal signal, Func<CancellationToken, Task<(T? Item, long NextDueTicks)>> tryLock,
        TimeSpan receiveTimeout, CancellationToken cancellationToken) where T : class
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        var token = linked.Token;
        // Waiting is measured in elapsed time (the provider's timestamp), not on its wall clock,
        // which tests may hold still or move by hand.
        var started = _time.GetTimestamp();
        try
        {
            while (!token.IsCancellationRequested)
            {
                var wake = signal.Current;
                var (item, nextDue) = await tryLock(token).ConfigureAwait(false);
                if (item is not null) return item;
                var now = UtcNow;
                var wait = receiveTimeout - _time.GetElapsedTime(started);
                if (wait <= TimeSpan.Zero) return null;
                if (wait > _options.PollingInterval) wait = _options.PollingInterval;
                if (nextDue != long.MaxValue)
                {
                    var untilDue = new DateTime(nextDue, DateTimeKind.Utc) - now;
                    if (untilDue < wait) wait = untilDue < TimeSpan.Zero ? TimeSpan.Zero : untilDue;
                }
                await WorkSignal.WaitAsync(wake, wait, _time, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        return null;
    }
}
