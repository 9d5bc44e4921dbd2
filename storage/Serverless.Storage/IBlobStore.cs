namespace Serverless.Storage;

/// <summary>
/// A flat store of named binary objects with optimistic concurrency through ETags, shaped like
/// Azure Blob Storage (one container per store). Names are '/'-separated paths.
/// </summary>
public interface IBlobStore
{
    /// <summary>
    /// Writes <paramref name="content"/> under <paramref name="name"/>, atomically: readers see the
    /// old object or the new one, never a mix.
    /// </summary>
    /// <exception cref="BlobConditionFailedException">The condition did not hold; nothing was written.</exception>
    Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default);

    /// <summary>Opens the object for reading, or returns null when it does not exist.</summary>
    Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Properties of every object whose name starts with <paramref name="prefix"/>, ordered by name.</summary>
    IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", CancellationToken cancellationToken = default);

    /// <summary>Deletes the object; returns false when it did not exist.</summary>
    /// <exception cref="BlobConditionFailedException">The condition did not hold; nothing was deleted.</exception>
    Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default);
}

/// <summary>The state of a stored object. <see cref="ETag"/> changes on every write.</summary>
public sealed record BlobProperties(string Name, string ETag, long Length, DateTimeOffset LastModified);

/// <summary>An open object: dispose it to release the stream.</summary>
public sealed class BlobDownload(BlobProperties properties, Stream content) : IAsyncDisposable, IDisposable
{
    public BlobProperties Properties { get; } = properties;
    public Stream Content { get; } = content;
    public ValueTask DisposeAsync() => Content.DisposeAsync();
    public void Dispose() => Content.Dispose();
}

/// <summary>
/// An HTTP-style precondition: <see cref="IfMatch"/> writes only over that exact version;
/// <see cref="IfNoneMatch"/> = "*" writes only when the object does not exist yet.
/// </summary>
public readonly record struct BlobCondition(string? IfMatch = null, string? IfNoneMatch = null)
{
    public static BlobCondition None => default;
    public static BlobCondition MustNotExist => new(IfNoneMatch: "*");
    public static BlobCondition MustMatch(string etag) => new(IfMatch: etag);
}

/// <summary>An ETag precondition failed (HTTP 412 / 409 in Azure's terms).</summary>
public sealed class BlobConditionFailedException(string name, BlobCondition condition)
    : Exception($"The condition on blob '{name}' did not hold (If-Match: {condition.IfMatch ?? "-"}, If-None-Match: {condition.IfNoneMatch ?? "-"}).")
{
    public string BlobName { get; } = name;
}
