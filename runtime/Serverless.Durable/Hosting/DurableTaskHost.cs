using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serverless.Durable.Backends;
using Serverless.Durable.Backends.Postgres;
using Serverless.Durable.Backends.Sqlite;
using Serverless.Durable.Core;
using Serverless.Durable.Payloads;
using Serverless.Durable.Worker;
using Serverless.Runtime.Storage;

namespace Serverless.Durable;

/// <summary>
/// The engine, standalone: storage for one task hub, a worker running the registered
/// orchestrators and activities, and a client. <c>await using</c> it; disposing stops the worker
/// (work in flight is redone after its lease expires).
/// </summary>
public sealed class DurableTaskHost : IAsyncDisposable
{
    private readonly IOrchestrationBackend _backend;
    private readonly DurableTaskWorker? _worker;
    private readonly DurableMetrics _metrics;

    private DurableTaskHost(IOrchestrationBackend backend, DurableTaskWorker? worker, DurableTaskClient client, DurableMetrics metrics, DurableTaskOptions options)
    {
        _backend = backend;
        _worker = worker;
        Client = client;
        _metrics = metrics;
        Options = options;
    }

    public DurableTaskClient Client { get; }

    public DurableTaskOptions Options { get; }

    internal DurableTaskWorker? Worker => _worker;

    /// <summary>Creates the hub's storage if needed and starts a worker (unless <paramref name="registry"/> is null: client only).</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public static async Task<DurableTaskHost> StartAsync(DurableTaskOptions options, DurableTaskRegistry? registry,
        IBlobStore? blobStore = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        loggerFactory ??= NullLoggerFactory.Instance;
        timeProvider ??= TimeProvider.System;
        var backend = CreateBackend(options, timeProvider);
        try
        {
            await backend.InitializeAsync(cancellationToken);
        }
        catch
        {
            await backend.DisposeAsync();
            throw;
        }
        var payloads = new PayloadStore(blobStore, options.HubName, options.LargePayloadThreshold);
        var metrics = new DurableMetrics();
        var client = new DurableTaskClient(backend, payloads, timeProvider, loggerFactory.CreateLogger("Serverless.Durable.Client"));
        DurableTaskWorker? worker = null;
        if (registry is not null)
        {
            worker = new DurableTaskWorker(backend, registry, options, payloads, loggerFactory, timeProvider, metrics);
            worker.Start();
        }
        return new DurableTaskHost(backend, worker, client, metrics, options);
    }

    internal static IOrchestrationBackend CreateBackend(DurableTaskOptions options, TimeProvider timeProvider) => options.StorageProvider switch
    {
        DurableStorageProvider.Sqlite => new SqliteBackend(options.ResolvedSqlitePath, options.SqliteDurability, timeProvider),
        DurableStorageProvider.Postgres => new PostgresBackend(options.PostgresConnectionString!, options.HubName, timeProvider),
        _ => throw new ArgumentOutOfRangeException(nameof(options), $"Unknown storage provider {options.StorageProvider}."),
    };

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        if (_worker is not null) await _worker.DisposeAsync();
        await _backend.DisposeAsync();
        _metrics.Dispose();
    }
}
