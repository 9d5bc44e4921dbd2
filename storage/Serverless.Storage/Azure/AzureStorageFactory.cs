using Azure.Core;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace Serverless.Storage.Azure;

/// <summary>
/// Builds Azure.Storage.Blobs / Azure.Storage.Queues service clients from a connection string or explicit
/// credentials. Every client shares one set of options, so retries and the service version are the same
/// everywhere.
/// </summary>
internal static class AzureStorageFactory
{
    // Azurite 3.37 knows service versions up to 2026-06-06, while the SDKs default to 2026-10-06; pinning the
    // version keeps a plain Azurite working without --skipApiVersionCheck, and Azure serves it too.
    private const BlobClientOptions.ServiceVersion BlobVersion = BlobClientOptions.ServiceVersion.V2026_06_06;
    private const QueueClientOptions.ServiceVersion QueueVersion = QueueClientOptions.ServiceVersion.V2026_06_06;

    public static BlobClientOptions BlobOptions()
    {
        var options = new BlobClientOptions(BlobVersion);
        ConfigureRetry(options);
        return options;
    }

    public static QueueClientOptions QueueOptions()
    {
        // Base64 bodies, as the Functions host's queue trigger expects by default, so any bytes round-trip.
        var options = new QueueClientOptions(QueueVersion) { MessageEncoding = QueueMessageEncoding.Base64 };
        ConfigureRetry(options);
        return options;
    }

    private static void ConfigureRetry(ClientOptions options)
    {
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.MaxRetries = 3;
        options.Retry.Delay = TimeSpan.FromMilliseconds(200);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(60);
    }

    public static BlobServiceClient Blobs(Uri endpoint, string account, string key) => new(endpoint, SharedKey(account, key), BlobOptions());
    public static BlobServiceClient Blobs(Uri endpoint, TokenCredential credential) => new(endpoint, credential, BlobOptions());
    public static BlobServiceClient Blobs(string connectionString) => new(connectionString, BlobOptions());
    public static QueueServiceClient Queues(Uri endpoint, string account, string key) => new(endpoint, SharedKey(account, key), QueueOptions());
    public static QueueServiceClient Queues(Uri endpoint, TokenCredential credential) => new(endpoint, credential, QueueOptions());
    public static QueueServiceClient Queues(string connectionString) => new(connectionString, QueueOptions());

    private static StorageSharedKeyCredential SharedKey(string account, string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(account);
        ArgumentException.ThrowIfNullOrEmpty(key);
        // Checked here so a mistyped key fails at start with a clear message, not at the first signed request.
        Span<byte> decoded = stackalloc byte[key.Length];
        if (!Convert.TryFromBase64String(key, decoded, out _))
            throw new ArgumentException("The storage account key is not valid base64.", nameof(key));
        return new StorageSharedKeyCredential(account, key);
    }
}
