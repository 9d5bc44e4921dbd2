using System.Security.Cryptography;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// A forward-only read stream that hashes (SHA-256) every byte it hands out, refuses to read past a
/// limit, and lets the caller peek at the first bytes (the blob header) before the reader starts.
/// </summary>
internal sealed class HashingReadStream(Stream inner, long maxBytes) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private byte[] _peeked = [];
    private int _peekOffset;
    private long _read;

    /// <summary>The first <paramref name="count"/> bytes (fewer at the end of the stream); they are still returned by the next reads.</summary>
    public ReadOnlySpan<byte> Peek(int count)
    {
        if (_read > 0 || _peeked.Length > 0) throw new InvalidOperationException("peek only before the first read");
        var buffer = new byte[count];
        var n = 0;
        int got;
        while (n < count && (got = inner.Read(buffer, n, count - n)) > 0) n += got;
        _peeked = buffer[..n];
        return _peeked;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n;
        if (_peekOffset < _peeked.Length)
        {
            n = Math.Min(buffer.Length, _peeked.Length - _peekOffset);
            _peeked.AsSpan(_peekOffset, n).CopyTo(buffer);
            _peekOffset += n;
        }
        else
        {
            n = inner.Read(buffer);
        }
        Account(buffer[..n]);
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_peekOffset < _peeked.Length) return Read(buffer.Span);
        var n = await inner.ReadAsync(buffer, cancellationToken);
        Account(buffer.Span[..n]);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Account(ReadOnlySpan<byte> data)
    {
        _read += data.Length;
        if (_read > maxBytes) throw new IOException($"the blob is longer than the limit of {maxBytes} bytes");
        _hash.AppendData(data);
    }

    /// <summary>The hash of everything read so far (call once the stream is exhausted).</summary>
    public string HashHex() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    /// <summary>Reads the rest of the stream and returns the hash of the whole.</summary>
    public async Task<string> DrainAndHashHexAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[1 << 16];
        while (await ReadAsync(buffer, cancellationToken) > 0)
        {
        }
        return HashHex();
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
