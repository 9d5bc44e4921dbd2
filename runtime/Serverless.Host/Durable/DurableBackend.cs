using DurableTask.AzureStorage;
using DurableTask.Core;
using Microsoft.DurableTask.Testing.Sidecar;
using Serverless.TaskHub.Sqlite;

namespace Serverless.Host.Durable;

/// <summary>
/// The task hub store DurableTask.Core runs on: one object that is both the engine's
/// <see cref="IOrchestrationService"/> and the client's <see cref="IOrchestrationServiceClient"/>, as every
/// DurableTask.Core provider is. Chosen from host.json <c>extensions.durableTask.storageProvider.type</c>
/// (see <see cref="FromHostJson"/>), or injected by a test.
/// </summary>
public sealed class DurableBackend : IAsyncDisposable
{
    private DurableBackend(string kind, string hubName, IOrchestrationService service, IOrchestrationServiceClient client)
    {
        Kind = kind;
        HubName = hubName;
        Service = service;
        Client = client;
    }

    /// <summary>"sqlite" (the embedded default), "AzureStorage" or "memory".</summary>
    public string Kind { get; }

    /// <summary>The task hub's name, as host.json's <c>extensions.durableTask.hubName</c> sets it.</summary>
    public string HubName { get; }

    public IOrchestrationService Service { get; }

    public IOrchestrationServiceClient Client { get; }

    /// <summary>The default hub name of a local Functions host (Core Tools uses the same).</summary>
    public const string DefaultHubName = "TestHubName";

    /// <summary>A process-local store that loses everything on exit: for fast tests only.</summary>
    public static DurableBackend InMemory(ILoggerFactory loggers, string hubName = DefaultHubName)
    {
        var service = new InMemoryOrchestrationService(loggers);
        return new DurableBackend("memory", hubName, service, service);
    }

    /// <summary>The embedded default: one SQLite file (runtime/Serverless.TaskHub.Sqlite, decision 0015).</summary>
    public static async Task<DurableBackend> SqliteAsync(string path, string hubName = DefaultHubName)
    {
        var service = new SqliteOrchestrationService(new SqliteOrchestrationServiceOptions { DataSource = path, TaskHubName = hubName });
        await service.CreateIfNotExistsAsync();
        return new DurableBackend("sqlite", hubName, service, service);
    }

    /// <summary>
    /// DurableTask.AzureStorage, the Azure Functions default (queues, tables and blobs of one storage account;
    /// Azurite locally). The hub's queues, tables and containers are created here, as the Functions host does.
    /// </summary>
    public static async Task<DurableBackend> AzureStorageAsync(string connectionString, string hubName, ILoggerFactory loggers,
        TimeSpan? maxQueuePollingInterval = null, int partitionCount = 4,
        TimeSpan? controlQueueVisibilityTimeout = null, TimeSpan? workItemQueueVisibilityTimeout = null)
    {
        var settings = new AzureStorageOrchestrationServiceSettings
        {
            TaskHubName = hubName,
            StorageAccountClientProvider = new StorageAccountClientProvider(connectionString),
            LoggerFactory = loggers,
            PartitionCount = partitionCount,
            // The Functions default is 30 s: fine for a cloud bill, slow for a local loop.
            MaxQueuePollingInterval = maxQueuePollingInterval ?? TimeSpan.FromSeconds(1),
        };
        // The extension's defaults (5 minutes) stand unless host.json sets them.
        if (controlQueueVisibilityTimeout is { } control) settings.ControlQueueVisibilityTimeout = control;
        if (workItemQueueVisibilityTimeout is { } workItem) settings.WorkItemQueueVisibilityTimeout = workItem;
        var service = new AzureStorageOrchestrationService(settings);
        await service.CreateIfNotExistsAsync();
        return new DurableBackend("AzureStorage", hubName, service, service);
    }

    /// <summary>
    /// The backend host.json asks for: <c>storageProvider.type</c> "AzureStorage" takes the connection from
    /// the <c>connectionName</c> setting (default AzureWebJobsStorage, an environment variable here);
    /// "memory" is the in-memory store; absent (or "sqlite") means the embedded SQLite file
    /// <c>durable.db</c> in the data directory.
    /// </summary>
    internal static async Task<DurableBackend> FromHostJsonAsync(string appDirectory, string dataDirectory, ILoggerFactory loggers)
    {
        DurableHostJson settings = DurableHostJson.Read(appDirectory);
        switch (settings.StorageType.ToLowerInvariant())
        {
            case "azurestorage":
                string setting = settings.ConnectionName ?? "AzureWebJobsStorage";
                string connection = Environment.GetEnvironmentVariable(setting) is { Length: > 0 } value
                    ? value
                    : throw new HostStartException($"host.json: durableTask.storageProvider is AzureStorage but the setting {setting} is not set");
                return await AzureStorageAsync(connection, settings.HubName, loggers, settings.MaxQueuePollingInterval,
                    controlQueueVisibilityTimeout: settings.ControlQueueVisibilityTimeout, workItemQueueVisibilityTimeout: settings.WorkItemQueueVisibilityTimeout);
            case "memory":
                return InMemory(loggers, settings.HubName);
            case "embedded":
            case "sqlite":
                return await SqliteAsync(Path.Combine(dataDirectory, "durable.db"), settings.HubName);
            default:
                throw new HostStartException($"host.json: durableTask.storageProvider type '{settings.StorageType}' is not supported (sqlite, AzureStorage, memory)");
        }
    }

    public async ValueTask DisposeAsync()
    {
        switch (Service)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync();
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }
}

/// <summary>host.json's <c>extensions.durableTask</c>: the settings this host reads.</summary>
internal sealed record DurableHostJson(string HubName, string StorageType, string? ConnectionName, TimeSpan? MaxQueuePollingInterval)
{
    /// <summary>How long a dequeued control (orchestration) message stays hidden: after a crash, how soon it is seen again.</summary>
    public TimeSpan? ControlQueueVisibilityTimeout { get; init; }

    /// <summary>The same for work-item (activity) messages.</summary>
    public TimeSpan? WorkItemQueueVisibilityTimeout { get; init; }

    public static DurableHostJson Read(string appDirectory)
    {
        var result = new DurableHostJson(DurableBackend.DefaultHubName, "embedded", null, null);
        string path = Path.Combine(appDirectory, "host.json");
        if (!File.Exists(path))
        {
            return result;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path),
                new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (!JsonLookup.TryGet(document.RootElement, "extensions", out JsonElement extensions) || !JsonLookup.TryGet(extensions, "durableTask", out JsonElement durable))
            {
                return result;
            }
            if (JsonLookup.TryGet(durable, "hubName", out JsonElement hub))
            {
                string name = hub.GetString() ?? string.Empty;
                // Azure Storage names: 3-45 letters and digits, starting with a letter (the extension's rule).
                if (name.Length is < 3 or > 45 || !char.IsAsciiLetter(name[0]) || !name.All(char.IsAsciiLetterOrDigit))
                {
                    throw new HostStartException("host.json: durableTask.hubName must be 3-45 letters and digits, starting with a letter");
                }
                result = result with { HubName = name };
            }
            if (JsonLookup.TryGet(durable, "storageProvider", out JsonElement provider) && provider.ValueKind == JsonValueKind.Object)
            {
                if (JsonLookup.TryGet(provider, "type", out JsonElement type))
                {
                    result = result with { StorageType = type.GetString() ?? "embedded" };
                }
                else
                {
                    // The Functions default provider is Azure Storage.
                    result = result with { StorageType = "AzureStorage" };
                }
                if (JsonLookup.TryGet(provider, "connectionName", out JsonElement connection) || JsonLookup.TryGet(provider, "connectionStringName", out connection))
                {
                    result = result with { ConnectionName = connection.GetString() };
                }
                result = result with
                {
                    MaxQueuePollingInterval = PositiveTime(provider, "maxQueuePollingInterval"),
                    ControlQueueVisibilityTimeout = PositiveTime(provider, "controlQueueVisibilityTimeout"),
                    WorkItemQueueVisibilityTimeout = PositiveTime(provider, "workItemQueueVisibilityTimeout"),
                };
            }
            return result;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new HostStartException($"host.json: extensions.durableTask: {e.Message}");
        }
    }

    private static TimeSpan? PositiveTime(JsonElement provider, string property)
    {
        if (!JsonLookup.TryGet(provider, property, out JsonElement value)) return null;
        if (!TimeSpan.TryParse(value.GetString(), System.Globalization.CultureInfo.InvariantCulture, out TimeSpan time) || time <= TimeSpan.Zero)
        {
            throw new HostStartException($"host.json: durableTask.storageProvider.{property} must be a positive hh:mm:ss");
        }
        return time;
    }
}
