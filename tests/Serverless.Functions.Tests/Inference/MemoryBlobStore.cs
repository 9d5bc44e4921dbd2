using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Serverless.Storage;

namespace Serverless.Functions.Tests.Inference;

/// <summary>An in-memory IBlobStore with real ETag conditions, for tests that need raw access to stored bytes.</summary>
internal sealed class MemoryBlobStore : IBlobStore
{
    private readonly ConcurrentDictionary<string, (byte[] Bytes, BlobProperties Properties)> _blobs = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private long _etag;

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        await content.CopyToAsync(buffer, cancellationToken);
        return SetRaw(name, buffer.ToArray(), condition);
    }

    public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default) =>
        Task.FromResult(_blobs.TryGetValue(name, out var blob)
            ? new BlobDownload(blob.Properties, new MemoryStream(blob.Bytes, writable: false))
            : null);

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        foreach (var key in _blobs.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            if (_blobs.TryGetValue(key, out var blob)) yield return blob.Properties;
    }

    public Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (!_blobs.TryGetValue(name, out var blob)) return Task.FromResult(false);
            if (condition.IfMatch is { } m && m != blob.Properties.ETag) throw new BlobConditionFailedException(name, condition);
            return Task.FromResult(_blobs.TryRemove(name, out _));
        }
    }

    public byte[] GetRaw(string name) => _blobs[name].Bytes;

    public BlobProperties SetRaw(string name, byte[] bytes, BlobCondition condition = default)
    {
        lock (_gate)
        {
            var exists = _blobs.TryGetValue(name, out var old);
            if (condition.IfNoneMatch == "*" && exists) throw new BlobConditionFailedException(name, condition);
            if (condition.IfMatch is { } m && (!exists || old.Properties.ETag != m)) throw new BlobConditionFailedException(name, condition);
            var properties = new BlobProperties(name, $"\"{Interlocked.Increment(ref _etag)}\"", bytes.Length, DateTimeOffset.UtcNow);
            _blobs[name] = (bytes, properties);
            return properties;
        }
    }
}

/// <summary>One <see cref="MemoryBlobStore"/> per container.</summary>
internal sealed class MemoryBlobStoreProvider : IBlobStoreProvider
{
    private readonly ConcurrentDictionary<string, MemoryBlobStore> _containers = new(StringComparer.Ordinal);
    public IBlobStore GetContainer(string container) => _containers.GetOrAdd(container, _ => new MemoryBlobStore());
    public string BackendName => "memory";
}
