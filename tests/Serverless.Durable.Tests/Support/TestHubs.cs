using Serverless.Durable.Backends.Postgres;
using Serverless.Runtime.Storage;
using Serverless.Testing;

namespace Serverless.Durable.Tests.Support;

/// <summary>
/// Storage for one test: a fresh SQLite file or a fresh PostgreSQL schema (a unique hub name),
/// so tests never see each other's instances. Small polling intervals keep tests quick.
/// </summary>
internal sealed class TestHub : IAsyncDisposable
{
    private readonly List<DurableTaskHost> _hosts = [];

    private TestHub(string backend, DurableTaskOptions options)
    {
        Backend = backend;
        Options = options;
    }

    public string Backend { get; }

    public DurableTaskOptions Options { get; }

    /// <summary>Every backend the tests run on: PostgreSQL unless the explicit local-only opt-out is set.</summary>
    public static TheoryData<string> Backends => TestServers.LocalOnly ? new TheoryData<string> { "sqlite" } : new TheoryData<string> { "sqlite", "postgres" };

    public static TestHub Create(string backend, Func<DurableTaskOptions, DurableTaskOptions>? configure = null)
    {
        var hub = "t" + Guid.NewGuid().ToString("N")[..20];
        var options = new DurableTaskOptions
        {
            HubName = hub,
            MinPollingInterval = TimeSpan.FromMilliseconds(5),
            MaxPollingInterval = TimeSpan.FromMilliseconds(50),
            MaxConcurrentOrchestratorFunctions = 4,
            MaxConcurrentActivityFunctions = 32,
        };
        options = backend switch
        {
            "sqlite" => options with { StorageProvider = DurableStorageProvider.Sqlite, SqlitePath = Path.Combine(Path.GetTempPath(), "serverless-durable-tests", hub + ".db") },
            "postgres" => options with { StorageProvider = DurableStorageProvider.Postgres, PostgresConnectionString = TestServers.PostgresConnectionString },
            _ => throw new ArgumentOutOfRangeException(nameof(backend)),
        };
        return new TestHub(backend, configure?.Invoke(options) ?? options);
    }

    /// <summary>Starts a worker + client on this hub's storage (call again after disposing one to "restart").</summary>
    public async Task<DurableTaskHost> StartAsync(DurableTaskRegistry? registry, IBlobStore? blobs = null)
    {
        var host = await DurableTaskHost.StartAsync(Options, registry, blobs);
        _hosts.Add(host);
        return host;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts) await host.DisposeAsync();
        if (Backend == "sqlite")
        {
            foreach (var suffix in new[] { "", "-wal", "-shm" })
                try { File.Delete(Options.SqlitePath + suffix); } catch (IOException) { }
        }
        else
        {
            await using var backend = new PostgresBackend(Options.PostgresConnectionString!, Options.HubName, TimeProvider.System);
            await backend.DropAsync(CancellationToken.None);
        }
    }
}

internal static class ClientExtensions
{
    /// <summary>Waits for completion with a generous ceiling so a hang fails the test instead of the run.</summary>
    public static async Task<OrchestrationMetadata> WaitAsync(this DurableTaskClient client, string instanceId, int seconds = 60)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        return await client.WaitForInstanceCompletionAsync(instanceId, cancellationToken: cts.Token);
    }

    /// <summary>Polls until <paramref name="condition"/> holds for the instance.</summary>
    public static async Task<OrchestrationMetadata> WaitUntilAsync(this DurableTaskClient client, string instanceId, Func<OrchestrationMetadata, bool> condition, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var m = await client.GetInstanceAsync(instanceId);
            if (m is not null && condition(m)) return m;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Instance {instanceId} did not reach the expected state; last: {m?.RuntimeStatus} {m?.SerializedCustomStatus}");
            await Task.Delay(10);
        }
    }
}
