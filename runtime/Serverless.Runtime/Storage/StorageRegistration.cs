using Microsoft.Extensions.Options;
using Serverless.Runtime.Health;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Storage.Embedded;

namespace Serverless.Runtime.Storage;

/// <summary>The data directory the host settled on (CLI, environment, host.json, default: in that order).</summary>
public sealed record DataDirectory(string Path);

/// <summary>Embedded blob containers: one directory per container under the data directory.</summary>
internal sealed class EmbeddedBlobStoreProvider(string root, TimeProvider time) : IBlobStoreProvider
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, FileBlobStore> _containers = new(StringComparer.Ordinal);

    public string BackendName => "embedded";

    public IBlobStore GetContainer(string container)
    {
        StorageNames.ThrowIfInvalidContainer(container);
        return _containers.GetOrAdd(container, c => new FileBlobStore(Path.Combine(root, c), time));
    }
}

internal static class StorageRegistration
{
    public static void AddStores(IServiceCollection services)
    {
        services.AddSingleton<IBlobStoreProvider>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            var dataDirectory = sp.GetRequiredService<DataDirectory>().Path;
            var time = sp.GetRequiredService<TimeProvider>();
            return options.Blob.Backend switch
            {
                StorageBackend.Azure => Azure.AzureStorageFactory.CreateBlobProvider(options.Blob),
                _ => new EmbeddedBlobStoreProvider(Path.Combine(dataDirectory, "blobs"), time),
            };
        });
        services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<IBlobStoreProvider>()
            .GetContainer(sp.GetRequiredService<IOptions<StorageOptions>>().Value.DefaultContainer));
        services.AddSingleton<IQueueStore>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            var dataDirectory = sp.GetRequiredService<DataDirectory>().Path;
            return options.Queue.Backend switch
            {
                StorageBackend.Azure => Azure.AzureStorageFactory.CreateQueueStore(options.Queue),
                _ => new SqliteQueueStore(Path.Combine(dataDirectory, "queues.db"), sp.GetRequiredService<TimeProvider>()),
            };
        });
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            return new StorageBackendName(options.Blob.Backend.ToString().ToLowerInvariant(), options.Queue.Backend.ToString().ToLowerInvariant());
        });
        services.AddHealthChecks()
            .AddCheck<BlobHealthCheck>("blob")
            .AddCheck<QueueHealthCheck>("queue");
    }
}
