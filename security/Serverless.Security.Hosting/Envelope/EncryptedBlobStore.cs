namespace Serverless.Security.Envelope;

/// <summary>
/// An <see cref="IBlobStore"/> that envelope-encrypts every object on the way in and decrypts
/// (verifying every chunk) on the way out. Give checkpoint writers this store, never the inner one.
/// </summary>
/// <remarks>
/// <see cref="BlobProperties.Length"/> is the stored (ciphertext) length. A read of an object that is
/// not authentic for its name throws <see cref="System.Security.Cryptography.CryptographicException"/>.
/// </remarks>
public sealed class EncryptedBlobStore(IBlobStore inner, EnvelopeEncryptor encryptor) : IBlobStore
{
    private readonly IBlobStore _inner = inner ?? throw new ArgumentNullException(nameof(inner));
    private readonly EnvelopeEncryptor _encryptor = encryptor ?? throw new ArgumentNullException(nameof(encryptor));

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        await using var sealedStream = await _encryptor.OpenEncryptStreamAsync(content, name, leaveOpen: true, cancellationToken);
        return await _inner.PutAsync(name, sealedStream, condition, cancellationToken);
    }

    public async Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        var download = await _inner.GetAsync(name, cancellationToken);
        if (download is null) return null;
        try
        {
            var plaintext = await _encryptor.OpenDecryptStreamAsync(download.Content, name, leaveOpen: false, cancellationToken);
            return new BlobDownload(download.Properties, plaintext);
        }
        catch
        {
            await download.DisposeAsync();
            throw;
        }
    }

    public IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", CancellationToken cancellationToken = default) =>
        _inner.ListAsync(prefix, cancellationToken);

    public Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default) =>
        _inner.DeleteAsync(name, condition, cancellationToken);

    /// <summary>Reads which key version protects an object, without decrypting it; null when it does not exist.</summary>
    public async Task<EnvelopeInfo?> GetEnvelopeInfoAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var download = await _inner.GetAsync(name, cancellationToken);
        return download is null ? null : await EnvelopeEncryptor.ReadInfoAsync(download.Content, cancellationToken);
    }

    /// <summary>
    /// Re-wraps one object's data key under the current KEK version: a new header, the same
    /// encrypted chunks (no payload is re-encrypted). Guarded by the object's ETag, so a concurrent
    /// writer wins and the re-wrap reports false. Returns false when already current or absent.
    /// </summary>
    public async Task<bool> RewrapAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var download = await _inner.GetAsync(name, cancellationToken);
        if (download is null) return false;
        var header = await _encryptor.RewrapHeaderAsync(download.Content, name, cancellationToken);
        if (header is null) return false;
        await using var rewritten = new PrefixedStream(header, download.Content);
        try
        {
            await _inner.PutAsync(name, rewritten, BlobCondition.MustMatch(download.Properties.ETag), cancellationToken);
            return true;
        }
        catch (BlobConditionFailedException)
        {
            return false;
        }
    }

    /// <summary>Re-wraps every object under <paramref name="prefix"/>; returns how many were rewritten.</summary>
    public async Task<int> RewrapAllAsync(string prefix = "", CancellationToken cancellationToken = default)
    {
        var names = new List<string>();
        await foreach (var blob in _inner.ListAsync(prefix, cancellationToken)) names.Add(blob.Name);
        var count = 0;
        foreach (var name in names)
            if (await RewrapAsync(name, cancellationToken)) count++;
        return count;
    }
}

/// <summary>A header followed by the rest of another stream.</summary>
internal sealed class PrefixedStream(byte[] prefix, Stream rest) : Stream
{
    private int _prefixOffset;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_prefixOffset < prefix.Length) return CopyPrefix(buffer);
        return rest.Read(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _prefixOffset < prefix.Length ? ValueTask.FromResult(CopyPrefix(buffer.Span)) : rest.ReadAsync(buffer, cancellationToken);

    private int CopyPrefix(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, prefix.Length - _prefixOffset);
        prefix.AsSpan(_prefixOffset, n).CopyTo(buffer);
        _prefixOffset += n;
        return n;
    }
}
