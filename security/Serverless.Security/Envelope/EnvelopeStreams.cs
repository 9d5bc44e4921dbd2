namespace Serverless.Security.Envelope;

/// <summary>Reads a source in fixed-length chunks, one chunk ahead, so each chunk knows whether it is the last.</summary>
internal sealed class LookaheadChunkReader(Stream source, int chunkLength)
{
    private byte[] _current = new byte[chunkLength];
    private byte[] _next = new byte[chunkLength];
    private int _nextLength;
    private bool _started;
    private bool _done;

    public byte[] Current => _current;

    /// <summary>Length of the next chunk (in <see cref="Current"/>) and whether it is the last; length -1 when exhausted.</summary>
    public async ValueTask<(int Length, bool Last)> NextAsync(bool useAsync, CancellationToken cancellationToken)
    {
        if (_done) return (-1, true);
        int length;
        if (!_started)
        {
            _started = true;
            length = await FillAsync(_current, useAsync, cancellationToken);
        }
        else
        {
            (_current, _next) = (_next, _current);
            length = _nextLength;
        }
        if (length < chunkLength)
        {
            _done = true;
            return (length, true);
        }
        _nextLength = await FillAsync(_next, useAsync, cancellationToken);
        if (_nextLength == 0)
        {
            _done = true;
            return (length, true);
        }
        return (length, false);
    }

    private ValueTask<int> FillAsync(byte[] buffer, bool useAsync, CancellationToken cancellationToken) =>
        useAsync
            ? source.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken)
            : ValueTask.FromResult(source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false));

    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_current);
        CryptographicOperations.ZeroMemory(_next);
    }
}

/// <summary>A forward-only readable stream; subclasses produce bytes into an output window.</summary>
internal abstract class ProducingReadStream : ForwardReadOnlyStream
{
    private byte[] _window = [];
    private int _offset;
    private int _count;
    private bool _finished;

    /// <summary>Produces the next block into a window; returns false when there is nothing more.</summary>
    protected abstract ValueTask<(byte[] Buffer, int Count)?> ProduceAsync(bool useAsync, CancellationToken cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (_offset == _count)
        {
            if (_finished) return 0;
            var next = ProduceAsync(useAsync: false, CancellationToken.None).GetAwaiter().GetResult();
            if (!Accept(next)) return 0;
        }
        return Drain(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_offset == _count)
        {
            if (_finished) return 0;
            var next = await ProduceAsync(useAsync: true, cancellationToken);
            if (!Accept(next)) return 0;
        }
        return Drain(buffer.Span);
    }

    private bool Accept((byte[] Buffer, int Count)? next)
    {
        if (next is not { } block)
        {
            _finished = true;
            return false;
        }
        (_window, _offset, _count) = (block.Buffer, 0, block.Count);
        return true;
    }

    private int Drain(Span<byte> destination)
    {
        var n = Math.Min(destination.Length, _count - _offset);
        _window.AsSpan(_offset, n).CopyTo(destination);
        _offset += n;
        return n;
    }

}

/// <summary>Plaintext in, envelope out: the header, then sealed chunks.</summary>
internal sealed class EnvelopeEncryptStream : ProducingReadStream
{
    private readonly Stream _plaintext;
    private readonly bool _leaveOpen;
    private readonly ChunkCipher _cipher;
    private readonly LookaheadChunkReader _reader;
    private readonly byte[] _output;
    private byte[]? _header;
    private long _index;

    public EnvelopeEncryptStream(Stream plaintext, bool leaveOpen, byte[] header, ChunkCipher cipher, int chunkSize)
    {
        _plaintext = plaintext;
        _leaveOpen = leaveOpen;
        _header = header;
        _cipher = cipher;
        _reader = new LookaheadChunkReader(plaintext, chunkSize);
        _output = new byte[chunkSize + ChunkCipher.TagLength];
    }

    protected override async ValueTask<(byte[] Buffer, int Count)?> ProduceAsync(bool useAsync, CancellationToken cancellationToken)
    {
        if (_header is { } header)
        {
            _header = null;
            return (header, header.Length);
        }
        var (length, last) = await _reader.NextAsync(useAsync, cancellationToken);
        if (length < 0) return null;
        _cipher.Encrypt(_index++, last, _reader.Current.AsSpan(0, length), _output.AsSpan(0, length + ChunkCipher.TagLength));
        return (_output, length + ChunkCipher.TagLength);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cipher.Dispose();
            _reader.Clear();
            if (!_leaveOpen) _plaintext.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>Envelope chunks in (after the header was read and authenticated), plaintext out.</summary>
internal sealed class EnvelopeDecryptStream : ProducingReadStream
{
    private readonly Stream _ciphertext;
    private readonly bool _leaveOpen;
    private readonly ChunkCipher _cipher;
    private readonly LookaheadChunkReader _reader;
    private readonly byte[] _plaintext;
    private long _index;

    public EnvelopeDecryptStream(Stream ciphertext, bool leaveOpen, ChunkCipher cipher, int chunkSize)
    {
        _ciphertext = ciphertext;
        _leaveOpen = leaveOpen;
        _cipher = cipher;
        _reader = new LookaheadChunkReader(ciphertext, chunkSize + ChunkCipher.TagLength);
        _plaintext = new byte[chunkSize];
    }

    protected override async ValueTask<(byte[] Buffer, int Count)?> ProduceAsync(bool useAsync, CancellationToken cancellationToken)
    {
        var (length, last) = await _reader.NextAsync(useAsync, cancellationToken);
        if (length < 0) return null;
        if (length < ChunkCipher.TagLength)
            throw new CryptographicException($"Envelope chunk {_index} is truncated ({length} bytes).");
        var plainLength = length - ChunkCipher.TagLength;
        _cipher.Decrypt(_index++, last, _reader.Current.AsSpan(0, length), _plaintext.AsSpan(0, plainLength));
        return (_plaintext, plainLength);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cipher.Dispose();
            CryptographicOperations.ZeroMemory(_plaintext);
            if (!_leaveOpen) _ciphertext.Dispose();
        }
        base.Dispose(disposing);
    }
}
