using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Serverless.Runtime.Storage;

namespace Serverless.Durable.Tests.Support;

/// <summary>A test double of <see cref="IBlobStore"/> kept in memory (ETags are counters).</summary>
internal sealed class InMemoryBlobStore : IBlobStore
{
    private readonly ConcurrentDictionary<string, (byte[] Data, BlobProperties Properties)> _blobs = new();
    private long _version;

    public int Count => _blobs.Count;

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        await content.CopyToAsync(buffer, cancellationToken);
        lock (_blobs)
        {
            var exists = _blobs.TryGetValue(name, out var current);
            if (condition.IfNoneMatch == "*" && exists) throw new BlobConditionFailedException(name, condition);
            if (condition.IfMatch is { } etag && (!exists || current.Properties.ETag != etag)) throw new BlobConditionFailedException(name, condition);
            var props = new BlobProperties(name, Interlocked.Increment(ref _version).ToString(System.Globalization.CultureInfo.InvariantCulture), buffer.Length, DateTimeOffset.UtcNow);
            _blobs[name] = (buffer.ToArray(), props);
            return props;
        }
    }

    public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default) =>
        Task.FromResult(_blobs.TryGetValue(name, out var blob) ? new BlobDownload(blob.Properties, new MemoryStream(blob.Data, writable: false)) : null);

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        foreach (var (_, blob) in _blobs.Where(b => b.Key.StartsWith(prefix, StringComparison.Ordinal)).OrderBy(b => b.Key, StringComparer.Ordinal))
            yield return blob.Properties;
    }

    public Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default) =>
        Task.FromResult(_blobs.TryRemove(name, out _));
}
