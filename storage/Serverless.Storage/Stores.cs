using Serverless.Storage.Azure;
using Serverless.Storage.Embedded;

namespace Serverless.Storage;

/// <summary>
/// Opens stores without a host: for tools, tests and modules that need a store of their own.
/// The function app registers its own from app settings (functions/Serverless.Functions/Hosting/AppStorage.cs).
/// </summary>
public static class Stores
{
    /// <summary>An embedded blob container kept in <paramref name="directory"/> (created if missing).</summary>
    public static IBlobStore OpenEmbeddedBlobContainer(string directory, TimeProvider? time = null) => new FileBlobStore(directory, time);

    /// <summary>Embedded blob containers, one directory each under <paramref name="root"/>.</summary>
    public static IBlobStoreProvider OpenEmbeddedBlobs(string root, TimeProvider? time = null) => new EmbeddedBlobStoreProvider(root, time);

    /// <summary>Embedded queues in the SQLite file <paramref name="databasePath"/> (created if missing).</summary>
    public static IQueueStore OpenEmbeddedQueues(string databasePath, TimeProvider? time = null) => new SqliteQueueStore(databasePath, time);

    /// <summary>Blob containers of an Azure Storage account (or Azurite) with an account key.</summary>
    public static IBlobStoreProvider OpenAzureBlobs(Uri endpoint, string accountName, string accountKey) =>
        new AzureBlobStoreProvider(AzureStorageFactory.Blobs(endpoint, accountName, accountKey));

    /// <summary>Blob containers of an Azure Storage account with Microsoft Entra ID tokens.</summary>
    public static IBlobStoreProvider OpenAzureBlobs(Uri endpoint, global::Azure.Core.TokenCredential credential) =>
        new AzureBlobStoreProvider(AzureStorageFactory.Blobs(endpoint, credential));

    /// <summary>Blob containers from a storage connection string (<c>UseDevelopmentStorage=true</c> for Azurite's default ports).</summary>
    public static IBlobStoreProvider OpenAzureBlobs(string connectionString) =>
        new AzureBlobStoreProvider(AzureStorageFactory.Blobs(connectionString));

    /// <summary>Queues of an Azure Storage account (or Azurite) with an account key.</summary>
    public static IQueueStore OpenAzureQueues(Uri endpoint, string accountName, string accountKey) =>
        new AzureQueueStore(AzureStorageFactory.Queues(endpoint, accountName, accountKey));

    /// <summary>Queues of an Azure Storage account with Microsoft Entra ID tokens.</summary>
    public static IQueueStore OpenAzureQueues(Uri endpoint, global::Azure.Core.TokenCredential credential) =>
        new AzureQueueStore(AzureStorageFactory.Queues(endpoint, credential));

    /// <summary>Queues from a storage connection string (<c>UseDevelopmentStorage=true</c> for Azurite's default ports).</summary>
    public static IQueueStore OpenAzureQueues(string connectionString) =>
        new AzureQueueStore(AzureStorageFactory.Queues(connectionString));
}
