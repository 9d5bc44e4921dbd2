namespace Serverless.Storage;

/// <summary>The directory of the embedded stores, the local keyring and the audit log (app setting <c>SERVERLESS_DATA_DIR</c>).</summary>
public sealed record DataDirectory(string Path);

/// <summary>Embedded blob containers: one directory per container under a root directory.</summary>
internal sealed class EmbeddedBlobStoreProvider(string root, TimeProvider? time) : IBlobStoreProvider
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IBlobStore> _containers = new(StringComparer.Ordinal);

    public string BackendName => "embedded";

    public IBlobStore GetContainer(string container)
    {
        StorageNames.ThrowIfInvalidContainer(container);
        return _containers.GetOrAdd(container, c => new Embedded.FileBlobStore(System.IO.Path.Combine(root, c), time));
    }
}
