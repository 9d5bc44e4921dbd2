using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Durable;

/// <summary>
/// host.json <c>extensions.durableTask</c>, with Durable Functions' key names where they exist:
/// <code>
/// "extensions": { "durableTask": {
///   "hubName": "serverless", "maxConcurrentOrchestratorFunctions": 8, "maxConcurrentActivityFunctions": 20,
///   "minPollingInterval": "00:00:00.010", "maxPollingInterval": "00:00:01", "leaseDuration": "00:00:30",
///   "largePayloadThreshold": 61440,
///   "storageProvider": { "type": "sqlite", "durability": "normal" }   // or { "type": "postgres", "connectionStringName": "SERVERLESS_DURABLE_POSTGRES" }
/// } }
/// </code>
/// </summary>
public sealed class DurableHostJsonOptions
{
    public string HubName { get; set; } = "default";
    public int MaxConcurrentOrchestratorFunctions { get; set; } = Environment.ProcessorCount * 4;
    public int MaxConcurrentActivityFunctions { get; set; } = Environment.ProcessorCount * 10;
    public TimeSpan MinPollingInterval { get; set; } = TimeSpan.FromMilliseconds(10);
    public TimeSpan MaxPollingInterval { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);
    public int LargePayloadThreshold { get; set; } = 60 * 1024;
    public DurableStorageProviderOptions StorageProvider { get; set; } = new();

    internal static void Validate(DurableHostJsonOptions o, HostJsonValidator v) => v
        .Require(Backends.Postgres.PostgresBackend.IsValidHubName(o.HubName), "hubName", "must be 1-50 letters, digits or underscores, starting with a letter")
        .Require(o.MaxConcurrentOrchestratorFunctions is >= 1 and <= 1000, "maxConcurrentOrchestratorFunctions", "must be between 1 and 1000")
        .Require(o.MaxConcurrentActivityFunctions is >= 1 and <= 10000, "maxConcurrentActivityFunctions", "must be between 1 and 10000")
        .Require(o.MinPollingInterval > TimeSpan.Zero, "minPollingInterval", "must be positive")
        .Require(o.MaxPollingInterval >= o.MinPollingInterval, "maxPollingInterval", "must be at least minPollingInterval")
        .Require(o.LeaseDuration >= TimeSpan.FromMilliseconds(100), "leaseDuration", "must be at least 00:00:00.100")
        .Require(o.LargePayloadThreshold >= 1, "largePayloadThreshold", "must be positive")
        .Require(o.StorageProvider.Type is "sqlite" or "postgres", "storageProvider.type", "must be \"sqlite\" or \"postgres\"")
        .Require(o.StorageProvider.Durability is "normal" or "full", "storageProvider.durability", "must be \"normal\" or \"full\"")
        .Require(!string.IsNullOrWhiteSpace(o.StorageProvider.ConnectionStringName), "storageProvider.connectionStringName", "must name an environment variable");

    /// <summary>The engine options, with the SQLite file in the data directory and the PostgreSQL connection string from the environment.</summary>
    internal DurableTaskOptions ToEngineOptions(string dataDirectory)
    {
        var postgres = StorageProvider.Type == "postgres";
        string? connectionString = null;
        if (postgres)
        {
            connectionString = Environment.GetEnvironmentVariable(StorageProvider.ConnectionStringName);
            if (string.IsNullOrWhiteSpace(connectionString))
                throw new InvalidOperationException(
                    $"host.json: extensions.durableTask.storageProvider: type is postgres but the environment variable '{StorageProvider.ConnectionStringName}' (connectionStringName) is not set.");
        }
        return new DurableTaskOptions
        {
            HubName = HubName,
            StorageProvider = postgres ? DurableStorageProvider.Postgres : DurableStorageProvider.Sqlite,
            SqlitePath = Path.Combine(dataDirectory, $"durable-{HubName.ToLowerInvariant()}.db"),
            SqliteDurability = StorageProvider.Durability == "full" ? Backends.Sqlite.SqliteDurability.Full : Backends.Sqlite.SqliteDurability.Normal,
            PostgresConnectionString = connectionString,
            MaxConcurrentOrchestratorFunctions = MaxConcurrentOrchestratorFunctions,
            MaxConcurrentActivityFunctions = MaxConcurrentActivityFunctions,
            MinPollingInterval = MinPollingInterval,
            MaxPollingInterval = MaxPollingInterval,
            LeaseDuration = LeaseDuration,
            LargePayloadThreshold = LargePayloadThreshold,
        };
    }
}

/// <summary>host.json <c>extensions.durableTask.storageProvider</c>.</summary>
public sealed class DurableStorageProviderOptions
{
    /// <summary><c>sqlite</c> (one file in the data directory) or <c>postgres</c>.</summary>
    public string Type { get; set; } = "sqlite";

    /// <summary>SQLite only: <c>normal</c> (WAL, synchronous=NORMAL) or <c>full</c> (fsync every commit).</summary>
    public string Durability { get; set; } = "normal";

    /// <summary>PostgreSQL only: the environment variable holding the Npgsql connection string (secrets never live in host.json).</summary>
    public string ConnectionStringName { get; set; } = "SERVERLESS_DURABLE_POSTGRES";
}
