using Serverless.Durable.Backends.Sqlite;

namespace Serverless.Durable;

/// <summary>Which backend stores a task hub.</summary>
public enum DurableStorageProvider
{
    /// <summary>One SQLite file (the embedded default).</summary>
    Sqlite,
    /// <summary>A PostgreSQL database shared by several worker processes (one schema per hub).</summary>
    Postgres,
}

/// <summary>
/// Engine options; in the function host they come from host.json <c>extensions.durableTask</c>
/// (see docs/durable.md for the mapping).
/// </summary>
public sealed record DurableTaskOptions
{
    /// <summary>The task hub: instances of different hubs never see each other (PostgreSQL schema <c>durable_&lt;hub&gt;</c>).</summary>
    public string HubName { get; init; } = "default";

    public DurableStorageProvider StorageProvider { get; init; } = DurableStorageProvider.Sqlite;

    /// <summary>The SQLite file (default: <c>data/durable-&lt;hub&gt;.db</c> under the current directory).</summary>
    public string? SqlitePath { get; init; }

    public SqliteDurability SqliteDurability { get; init; } = SqliteDurability.Normal;

    /// <summary>An Npgsql connection string, required for <see cref="DurableStorageProvider.Postgres"/>.</summary>
    public string? PostgresConnectionString { get; init; }

    /// <summary>Episodes run at once by this worker.</summary>
    public int MaxConcurrentOrchestratorFunctions { get; init; } = Environment.ProcessorCount * 4;

    /// <summary>Activities run at once by this worker.</summary>
    public int MaxConcurrentActivityFunctions { get; init; } = Environment.ProcessorCount * 10;

    /// <summary>The shortest wait between polls of an idle queue; doubles up to <see cref="MaxPollingInterval"/> while idle.</summary>
    public TimeSpan MinPollingInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a claimed work item stays with its worker without renewal; a crashed worker's items are taken over after it.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Payloads (inputs, outputs, events) longer than this many UTF-16 characters go to the blob store; history keeps a reference.</summary>
    public int LargePayloadThreshold { get; init; } = 60 * 1024;

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public void Validate()
    {
        Backends.Postgres.PostgresBackend.SchemaFor(HubName);
        if (StorageProvider == DurableStorageProvider.Postgres && string.IsNullOrWhiteSpace(PostgresConnectionString))
            throw new ArgumentException("durableTask: a PostgreSQL connection string is required when the storage provider is Postgres.");
        if (MaxConcurrentOrchestratorFunctions < 1) throw new ArgumentException("durableTask: maxConcurrentOrchestratorFunctions must be at least 1.");
        if (MaxConcurrentActivityFunctions < 1) throw new ArgumentException("durableTask: maxConcurrentActivityFunctions must be at least 1.");
        if (MinPollingInterval <= TimeSpan.Zero || MaxPollingInterval < MinPollingInterval)
            throw new ArgumentException("durableTask: polling intervals must satisfy 0 < min <= max.");
        if (LeaseDuration < TimeSpan.FromMilliseconds(100)) throw new ArgumentException("durableTask: leaseDuration must be at least 100 ms.");
        if (LargePayloadThreshold < 1) throw new ArgumentException("durableTask: largePayloadThreshold must be positive.");
    }

    internal string ResolvedSqlitePath => SqlitePath ?? Path.Combine("data", $"durable-{HubName.ToLowerInvariant()}.db");
}
