using DurableTask.Core;

namespace Serverless.TaskHub.Sqlite.Tests;

/// <summary>
/// DurableTask.Core's own TaskHubWorker and TaskHubClient, in process, over a
/// SqliteOrchestrationService on a fresh file in a temporary folder (deleted on dispose).
/// </summary>
internal sealed class TaskHubHarness : IAsyncDisposable
{
    /// <summary>A failure guard only: no test asserts how long anything takes.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    private readonly List<(TaskHubWorker Worker, SqliteOrchestrationService Service)> _workers = [];

    public TaskHubHarness(string? directory = null)
    {
        Directory = directory ?? Path.Combine(Path.GetTempPath(), "taskhub-sqlite-tests", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string DataSource => Path.Combine(Directory, "hub.db");

    public SqliteOrchestrationServiceOptions Options(TimeSpan? lease = null) => new()
    {
        DataSource = DataSource,
        TaskHubName = "tests",
        WorkItemLockTimeout = lease ?? TimeSpan.FromSeconds(30),
        PollingInterval = TimeSpan.FromMilliseconds(50),
        MaxConcurrentOrchestrations = 8,
        MaxConcurrentActivities = 8,
    };

    /// <summary>Starts a worker (its own service instance on the hub's file) with every orchestration and activity of these tests.</summary>
    public async Task<(TaskHubWorker Worker, SqliteOrchestrationService Service)> StartWorkerAsync(TimeSpan? lease = null, Action<TaskHubWorker>? configure = null)
    {
        var service = new SqliteOrchestrationService(Options(lease));
        await service.CreateIfNotExistsAsync();
        var worker = new TaskHubWorker(service);
        worker.AddTaskOrchestrations(Orchestrations.All);
        worker.AddTaskActivities(Activities.All);
        configure?.Invoke(worker);
        await worker.StartAsync();
        _workers.Add((worker, service));
        return (worker, service);
    }

    public static TaskHubClient Client(SqliteOrchestrationService service) => new(service);

    public static async Task<OrchestrationState> CompletionAsync(TaskHubClient client, OrchestrationInstance instance)
    {
        var state = await client.WaitForOrchestrationAsync(instance, Patience);
        Assert.NotNull(state);
        return state;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (worker, service) in _workers)
        {
            try { await worker.StopAsync(isForced: true); } catch (ObjectDisposedException) { }
            await service.DisposeAsync();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
