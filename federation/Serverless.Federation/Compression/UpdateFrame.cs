using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Serverless.Federation.Compression;

/// <summary>What a frame carries.</summary>
public enum FrameKind : byte
{
    /// <summary>float32 per entry.</summary>
    Dense = 1,

    /// <summary>A <see cref="QuantizedVector"/>.</summary>
    Quantized = 2,

    /// <summary>A <see cref="SparseVector"/>: gap-varint indices, float32 values.</summary>
    Sparse = 3,

    /// <summary>Ring elements of secure aggregation (k bits each, packed).</summary>
    Ring = 4,
}

/// <summary>A decoded frame: the kind, the vector length and the kind's payload.</summary>
public sealed record DecodedFrame(FrameKind Kind, int Length, float[]? Dense, QuantizedVector? Quantized, SparseVector? Sparse, int RingBits, byte[]? RingPacked);

/// <summary>The frame did not decode: wrong magic, version, kind, size, or checksum.</summary>
public sealed class FrameFormatException(string message) : Exception(message);

/// <summary>
/// Compact framing of an update on the wire:
/// <c>"FLU" | version (1) | kind (1) | length (int32) | kind parameters | payload | SHA-256(header+payload)[0..16]</c>.
/// The truncated hash catches corruption and truncation (it is not a MAC: transport security and
/// secure aggregation's own integrity cover tampering). Every field is checked on decode.
/// </summary>
public static class UpdateFrame
{
    private const byte Version = 1;
    private const int HeaderLength = 3 + 1 + 1 + 4;
    private const int ChecksumLength = 16;
    private static ReadOnlySpan<byte> Magic => "FLU"u8;

    /// <summary>Frames a dense float32 vector.</summary>
    public static byte[] EncodeDense(ReadOnlySpan<float> values)
    {
        var payload = MemoryMarshal.AsBytes(values);
        return Seal(FrameKind.Dense, values.Length, [], payload);
    }

    /// <summary>Frames a quantized vector.</summary>
    public static byte[] EncodeQuantized(QuantizedVector q)
    {
        StochasticQuantizer.Validate(q);
        var p = new byte[1 + 4 + q.Mins.Length * 8];
        p[0] = (byte)q.Bits;
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(1), q.ChunkSize);
        MemoryMarshal.AsBytes(q.Mins.AsSpan()).CopyTo(p.AsSpan(5));
        MemoryMarshal.AsBytes(q.Maxs.AsSpan()).CopyTo(p.AsSpan(5 + q.Mins.Length * 4));
        return Seal(FrameKind.Quantized, q.Length, p, q.Levels);
    }

    /// <summary>Frames a sparse vector.</summary>
    public static byte[] EncodeSparse(SparseVector s)
    {
        var scratch = new float[s.Length];
        s.ToDense(scratch); // validates indices
        var buffer = new List<byte>(s.Indices.Length * 6);
        var last = -1;
        foreach (var i in s.Indices) { WriteVarint(buffer, (uint)(i - last - 1)); last = i; }
        var p = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(p, s.Indices.Length);
        var payload = new byte[buffer.Count + s.Values.Length * 4];
        buffer.CopyTo(payload);
        MemoryMarshal.AsBytes(s.Values.AsSpan()).CopyTo(payload.AsSpan(buffer.Count));
        return Seal(FrameKind.Sparse, s.Length, p, payload);
    }

    /// <summary>Frames packed ring elements.</summary>
    public static byte[] EncodeRing(int length, int ringBits, ReadOnlySpan<byte> packed)
    {
        if (ringBits is < 1 or > 32) throw new ArgumentOutOfRangeException(nameof(ringBits));
        if (packed.Length != Serverless.Privacy.SecureAggregation.RingCodec.PackedLength(length, ringBits)) throw new ArgumentException("Packed length differs.", nameof(packed));
        return Seal(FrameKind.Ring, length, [(byte)ringBits], packed);
    }

    /// <summary>Validates and decodes a frame. Every allocation is bounded by the input's size or by <paramref name="maxLength"/>.</summary>
    /// <param name="frame">The frame.</param>
    /// <param name="maxLength">The largest vector length accepted (callers that know the model's size pass it).</param>
    /// <exception cref="FrameFormatException">anything about the frame is wrong.</exception>
    public static DecodedFrame Decode(ReadOnlySpan<byte> frame, int maxLength = 1 << 28)
    {
        if (frame.Length < HeaderLength + ChecksumLength) throw new FrameFormatException($"frame of {frame.Length} bytes is shorter than header and checksum");
        if (!frame[..3].SequenceEqual(Magic)) throw new FrameFormatException("bad magic");
        if (frame[3] != Version) throw new FrameFormatException($"unsupported version {frame[3]}");
        var kind = (FrameKind)frame[4];
        var length = BinaryPrimitives.ReadInt32LittleEndian(frame[5..]);
        if (length < 0 || length > maxLength) throw new FrameFormatException($"vector length {length} out of range");
        var body = frame[..^ChecksumLength];
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        if (!CryptographicOperations.FixedTimeEquals(hash[..ChecksumLength], frame[^ChecksumLength..])) throw new FrameFormatException("checksum mismatch");
        var rest = body[HeaderLength..];
        try
        {
            switch (kind)
            {
                case FrameKind.Dense:
                    if (rest.Length != length * 4L) throw new FrameFormatException("dense payload has the wrong size");
                    var dense = MemoryMarshal.Cast<byte, float>(rest).ToArray();
                    return new DecodedFrame(kind, length, dense, null, null, 0, null);
                case FrameKind.Quantized:
                    {
                        if (rest.Length < 5) throw new FrameFormatException("quantized header truncated");
                        int bits = rest[0], chunk = BinaryPrimitives.ReadInt32LittleEndian(rest[1..]);
                        if (bits is < 1 or > 16 || chunk < 1) throw new FrameFormatException("quantized bits or chunk size out of range");
                        var chunks = (int)(((long)length + chunk - 1) / chunk);
                        var need = 5L + chunks * 8L + Serverless.Privacy.SecureAggregation.RingCodec.PackedLength(length, bits);
                        if (rest.Length != need) throw new FrameFormatException("quantized payload has the wrong size");
                        var mins = MemoryMarshal.Cast<byte, float>(rest.Slice(5, chunks * 4)).ToArray();
                        var maxs = MemoryMarshal.Cast<byte, float>(rest.Slice(5 + chunks * 4, chunks * 4)).ToArray();
                        var q = new QuantizedVector(length, bits, chunk, mins, maxs, rest[(5 + chunks * 8)..].ToArray());
                        StochasticQuantizer.Validate(q);
                        return new DecodedFrame(kind, length, null, q, null, 0, null);
                    }
                case FrameKind.Sparse:
                    {
                        if (rest.Length < 4) throw new FrameFormatException("sparse header truncated");
                        var k = BinaryPrimitives.ReadInt32LittleEndian(rest);
                        // Each entry takes at least one index byte and four value bytes, so the input bounds k
                        // before anything is allocated (a 29-byte frame must not ask for a 1 GiB index array).
                        if (k < 0 || k > length || k > (rest.Length - 4) / 5) throw new FrameFormatException("sparse count out of range");
                        var p = 4;
                        var indices = new int[k];
                        long last = -1;
                        for (var j = 0; j < k; j++)
                        {
                            last = last + 1 + ReadVarint(rest, ref p);
                            if (last >= length) throw new FrameFormatException("sparse index out of range");
                            indices[j] = (int)last;
                        }
                        if (rest.Length - p != k * 4L) throw new FrameFormatException("sparse values have the wrong size");
                        var values = MemoryMarshal.Cast<byte, float>(rest[p..]).ToArray();
                        return new DecodedFrame(kind, length, null, null, new SparseVector(length, indices, values), 0, null);
                    }
                case FrameKind.Ring:
                    {
                        if (rest.Length < 1) throw new FrameFormatException("ring header truncated");
                        int bits = rest[0];
                        if (bits is < 1 or > 32) throw new FrameFormatException("ring width out of range");
                        if (rest.Length - 1 != Serverless.Privacy.SecureAggregation.RingCodec.PackedLength(length, bits)) throw new FrameFormatException("ring payload has the wrong size");
                        return new DecodedFrame(kind, length, null, null, null, bits, rest[1..].ToArray());
                    }
                default:
                    throw new FrameFormatException($"unknown frame kind {(byte)kind}");
            }
        }
        catch (ArgumentException e)
        {
            throw new FrameFormatException(e.Message);
        }
    }

    /// <summary>
    /// Decodes any frame kind except Ring to a dense vector of exactly <paramref name="expectedLength"/>
    /// entries (the model's parameter count). The declared length is checked before anything of that
    /// size is allocated: a sparse frame declares its length independently of its size on the wire.
    /// </summary>
    /// <exception cref="FrameFormatException">the frame is malformed or declares another length.</exception>
    public static float[] DecodeToDense(ReadOnlySpan<byte> frame, int expectedLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedLength);
        var f = Decode(frame, expectedLength);
        if (f.Length != expectedLength) throw new FrameFormatException($"update has {f.Length} entries, the model {expectedLength}");
        var dense = new float[f.Length];
        switch (f.Kind)
        {
            case FrameKind.Dense: return f.Dense!;
            case FrameKind.Quantized: StochasticQuantizer.Dequantize(f.Quantized!, dense); return dense;
            case FrameKind.Sparse: f.Sparse!.ToDense(dense); return dense;
            default: throw new FrameFormatException("a ring frame has no dense form without unmasking");
        }
    }

    private static byte[] Seal(FrameKind kind, int length, ReadOnlySpan<byte> parameters, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[HeaderLength + parameters.Length + payload.Length + ChecksumLength];
        Magic.CopyTo(frame);
        frame[3] = Version;
        frame[4] = (byte)kind;
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(5), length);
        parameters.CopyTo(frame.AsSpan(HeaderLength));
        payload.CopyTo(frame.AsSpan(HeaderLength + parameters.Length));
        var body = frame.AsSpan(0, frame.Length - ChecksumLength);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        hash[..ChecksumLength].CopyTo(frame.AsSpan(frame.Length - ChecksumLength));
        return frame;
    }

    private static void WriteVarint(List<byte> output, uint value)
    {
        while (value >= 0x80) { output.Add((byte)(value | 0x80)); value >>= 7; }
        output.Add((byte)value);
    }

    private static uint ReadVarint(ReadOnlySpan<byte> data, ref int position)
    {
        uint result = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            if (position >= data.Length) throw new FrameFormatException("varint truncated");
            var b = data[position++];
            result |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new FrameFormatException("varint too long");
    }
}
