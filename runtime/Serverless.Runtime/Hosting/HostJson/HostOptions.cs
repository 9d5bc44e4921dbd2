namespace Serverless.Runtime.Hosting.HostJson;

/// <summary>The scalar keys at host.json's root.</summary>
public sealed class HostRootOptions
{
    internal static readonly string[] Keys = ["version", "functionTimeout"];

    /// <summary>Schema version; must be "2.0" as in Azure Functions.</summary>
    public string Version { get; set; } = "2.0";

    /// <summary>Longest a single invocation may run; null means no limit. Default 00:05:00 as Azure's consumption plan.</summary>
    public TimeSpan? FunctionTimeout { get; set; } = TimeSpan.FromMinutes(5);

    internal static void Validate(HostRootOptions o, HostJsonValidator v) => v
        .Require(o.Version == "2.0", "version", "must be \"2.0\"")
        .Require(o.FunctionTimeout is null || (o.FunctionTimeout > TimeSpan.Zero && o.FunctionTimeout <= TimeSpan.FromDays(1)), "functionTimeout", "must be between 00:00:00.001 and 1.00:00:00");
}

/// <summary>host.json <c>logging</c>: <c>logLevel</c> maps a category prefix (or "default") to a level.</summary>
public sealed class LoggingOptions
{
    public Dictionary<string, string> LogLevel { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    internal static void Validate(LoggingOptions o, HostJsonValidator v)
    {
        foreach (var (category, level) in o.LogLevel)
            v.Require(Enum.TryParse<Microsoft.Extensions.Logging.LogLevel>(level, ignoreCase: true, out _) && !int.TryParse(level, out _),
                "logLevel." + category, "must be one of Trace, Debug, Information, Warning, Error, Critical, None");
    }
}

/// <summary>host.json <c>extensions.queues</c>, with Azure Functions' names and defaults.</summary>
public sealed class QueuesOptions
{
    /// <summary>Messages fetched and processed in parallel per function (1..32).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>When this few messages are still in flight, the next batch is fetched. Default batchSize / 2.</summary>
    public int? NewBatchThreshold { get; set; }

    /// <summary>Failed attempts before a message moves to <c>&lt;queue&gt;-poison</c>.</summary>
    public int MaxDequeueCount { get; set; } = 5;

    /// <summary>Delay before a failed message becomes visible for the next attempt (Azure's meaning of this key).</summary>
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.Zero;

    /// <summary>Longest wait between polls of an empty queue (polling backs off exponentially from 100 ms).</summary>
    public TimeSpan MaxPollingInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a received message stays hidden while its function runs; renewed at half this interval.
    /// If the host dies, the message reappears after at most this long. (Azure fixes it at 10 minutes.)
    /// </summary>
    public TimeSpan MessageLease { get; set; } = TimeSpan.FromMinutes(1);

    internal int EffectiveNewBatchThreshold => NewBatchThreshold ?? BatchSize / 2;

    internal static void Validate(QueuesOptions o, HostJsonValidator v) => v
        .Require(o.BatchSize is >= 1 and <= 32, "batchSize", "must be between 1 and 32")
        .Require(o.NewBatchThreshold is null or (>= 0 and <= 1000), "newBatchThreshold", "must be between 0 and 1000")
        .Require(o.MaxDequeueCount is >= 1 and <= 1000, "maxDequeueCount", "must be between 1 and 1000")
        .Require(o.VisibilityTimeout >= TimeSpan.Zero && o.VisibilityTimeout <= TimeSpan.FromDays(7), "visibilityTimeout", "must be between 00:00:00 and 7.00:00:00")
        .Require(o.MaxPollingInterval >= TimeSpan.FromMilliseconds(100) && o.MaxPollingInterval <= TimeSpan.FromHours(1), "maxPollingInterval", "must be between 00:00:00.100 and 01:00:00")
        .Require(o.MessageLease >= TimeSpan.FromSeconds(1) && o.MessageLease <= TimeSpan.FromDays(7), "messageLease", "must be between 00:00:01 and 7.00:00:00");
}

public enum StorageBackend
{
    Embedded,
    Azure,
}

public enum AzureAuthentication
{
    /// <summary>Account key (the Azure SDK signs with it); the key comes from the environment variable named by <c>accountKeyEnvironmentVariable</c>.</summary>
    SharedKey,

    /// <summary>Microsoft Entra ID bearer tokens through Azure.Identity's DefaultAzureCredential (managed identity in Azure).</summary>
    Token,

    /// <summary>
    /// A storage connection string (account key, SAS, or <c>UseDevelopmentStorage=true</c> for Azurite on its
    /// default ports) from the environment variable named by <c>connectionStringEnvironmentVariable</c>.
    /// </summary>
    ConnectionString,
}

/// <summary>One store's backend: embedded (under the data directory) or an Azure Storage account.</summary>
public sealed class StoreBackendOptions
{
    public StorageBackend Backend { get; set; } = StorageBackend.Embedded;

    /// <summary>Azure: service endpoint, e.g. https://acct.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1.</summary>
    public string? Endpoint { get; set; }

    public string? AccountName { get; set; }

    public AzureAuthentication Authentication { get; set; } = AzureAuthentication.SharedKey;

    /// <summary>Name of the environment variable that holds the account key (keys never live in host.json).</summary>
    public string AccountKeyEnvironmentVariable { get; set; } = "SERVERLESS_STORAGE_ACCOUNT_KEY";

    /// <summary>Name of the environment variable that holds the connection string (as Azure Functions' AzureWebJobsStorage).</summary>
    public string ConnectionStringEnvironmentVariable { get; set; } = "AzureWebJobsStorage";

    internal void Validate(HostJsonValidator v, string prefix)
    {
        if (Backend != StorageBackend.Azure) return;
        if (Authentication == AzureAuthentication.ConnectionString)
        {
            v.Require(!string.IsNullOrWhiteSpace(ConnectionStringEnvironmentVariable), prefix + ".connectionStringEnvironmentVariable", "must name an environment variable for connectionString authentication");
            return;
        }
        v.Require(Uri.TryCreate(Endpoint, UriKind.Absolute, out var uri) && (uri.Scheme == "https" || uri.Scheme == "http"), prefix + ".endpoint", "must be an absolute http(s) URL when backend is azure");
        v.Require(Authentication == AzureAuthentication.Token || !string.IsNullOrWhiteSpace(AccountName), prefix + ".accountName", "is required for sharedKey authentication");
    }
}

/// <summary>host.json <c>storage</c>: where the host keeps its blobs, queues and timer status.</summary>
public sealed class StorageOptions
{
    /// <summary>Root of all embedded data; overridden by --data-dir or SERVERLESS_DATA_DIR.</summary>
    public string DataDirectory { get; set; } = "./.serverless-data";

    /// <summary>Container used for <see cref="Storage.IBlobStore"/> injected without a name.</summary>
    public string DefaultContainer { get; set; } = "serverless";

    public StoreBackendOptions Blob { get; set; } = new();
    public StoreBackendOptions Queue { get; set; } = new();

    internal static void Validate(StorageOptions o, HostJsonValidator v)
    {
        v.Require(!string.IsNullOrWhiteSpace(o.DataDirectory), "dataDirectory", "must not be empty");
        v.Require(Storage.StorageNames.IsValidContainerName(o.DefaultContainer), "defaultContainer", "must be 3-63 lower-case letters, digits and single hyphens");
        o.Blob.Validate(v, "blob");
        o.Queue.Validate(v, "queue");
    }
}
