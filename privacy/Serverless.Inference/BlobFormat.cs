using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Serverless.Inference;

/// <summary>
/// Framing shared by the inference blobs (little-endian): magic "HEIN", version u16, kind u8, the
/// 32-byte CKKS parameter hash, then the kind's body. Embedded CKKS objects are length-prefixed
/// (i32) <see cref="CkksSerializer"/> blobs, which carry and check the parameter hash themselves.
/// </summary>
internal static class BlobFormat
{
    public const ushort Version = 1;

    public static ReadOnlySpan<byte> Magic => "HEIN"u8;

    public enum Kind : byte
    {
        Batch = 1,
        Group = 2,
        Result = 3,
        EvaluationKeys = 4,
        PartnerKeys = 5,
        GroupResult = 6,
    }

    /// <summary>Length of a key id (<see cref="EvaluationKeys.KeyId"/>, SHA-256).</summary>
    public const int KeyIdLength = 32;

    /// <summary>Magic (4), version (2) and kind (1).</summary>
    public const int PrefixLength = 7;

    /// <summary>The prefix and the parameter hash (SHA-256).</summary>
    public const int HeaderLength = PrefixLength + 32;

    public static byte[] ToBytes(Action<Stream> write)
    {
        using var ms = new MemoryStream();
        write(ms);
        return ms.ToArray();
    }

    public static void WriteHeader(Stream s, Kind kind, ReadOnlySpan<byte> parameterHash)
    {
        Span<byte> head = stackalloc byte[PrefixLength];
        Magic.CopyTo(head);
        BinaryPrimitives.WriteUInt16LittleEndian(head[4..], Version);
        head[6] = (byte)kind;
        s.Write(head);
        s.Write(parameterHash);
    }

    /// <summary>The header of a blob whose records are under one key: header, then the key id.</summary>
    public static void WriteKeyedHeader(Stream s, Kind kind, ReadOnlySpan<byte> parameterHash, ReadOnlySpan<byte> keyId)
    {
        WriteHeader(s, kind, parameterHash);
        s.Write(keyId);
    }

    public static void WriteInt32(Stream s, int v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        s.Write(b);
    }

    public static void WriteBlob(Stream s, ReadOnlySpan<byte> blob)
    {
        WriteInt32(s, blob.Length);
        s.Write(blob);
    }

    /// <summary>Runs <paramref name="read"/> over a read-only stream on <paramref name="data"/> (no copy when it is an array's).</summary>
    public static T Read<T>(ReadOnlyMemory<byte> data, Func<Stream, T> read)
    {
        var segment = MemoryMarshal.TryGetArray(data, out var s) ? s : new ArraySegment<byte>(data.ToArray());
        using var stream = new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false);
        return read(stream);
    }
}

/// <summary>
/// Bounds-checked reader over a stream: every short read is a <see cref="HeFormatException"/> naming
/// the field, and length prefixes are checked against a caller's bound before anything is allocated.
/// </summary>
internal sealed class BlobReader(Stream stream, string what)
{
    private readonly byte[] _small = new byte[32];

    public void ReadExactly(Span<byte> destination, string field)
    {
        var total = 0;
        while (total < destination.Length)
        {
            int n;
            try
            {
                n = stream.Read(destination[total..]);
            }
            catch (IOException e)
            {
                throw new HeFormatException($"{what}: reading {field} failed ({e.Message})", e);
            }
            if (n == 0) throw new HeFormatException($"{what}: truncated input, {field} needs {destination.Length} bytes, {total} present").With(InferenceErrors.Truncated);
            total += n;
        }
    }

    public void ReadHeader(BlobFormat.Kind kind, EvaluationPlan plan)
    {
        var head = _small.AsSpan(0, BlobFormat.PrefixLength);
        ReadExactly(head, "header");
        if (!head[..4].SequenceEqual(BlobFormat.Magic)) throw new HeFormatException($"{what}: not an encrypted-inference blob (bad magic)");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(head[4..]);
        if (version != BlobFormat.Version) throw new HeFormatException($"{what}: unsupported format version {version} (this build reads {BlobFormat.Version})");
        if (head[6] != (byte)kind) throw new HeFormatException($"{what}: expected a {kind} blob, found kind {head[6]}");
        var hash = _small.AsSpan(0, 32);
        ReadExactly(hash, "parameter hash");
        plan.CheckParameterHash(hash, what);
    }

    /// <summary>Reads what <see cref="BlobFormat.WriteKeyedHeader"/> wrote and returns the key id.</summary>
    public byte[] ReadKeyedHeader(BlobFormat.Kind kind, EvaluationPlan plan)
    {
        ReadHeader(kind, plan);
        return ReadBytes(BlobFormat.KeyIdLength, "key id");
    }

    public byte[] ReadBytes(int count, string field)
    {
        // A length prefix is checked against what the input still holds before it is allocated: a
        // 48-byte partner-key blob declaring a 2 GiB evaluation-key blob allocated 2 GiB (found by the fuzz suite).
        if (stream.CanSeek && count > stream.Length - stream.Position)
            throw new HeFormatException($"{what}: truncated input, {field} needs {count} bytes, {stream.Length - stream.Position} present").With(InferenceErrors.Truncated);
        var b = new byte[count];
        ReadExactly(b, field);
        return b;
    }

    public int ReadInt32InRange(string field, int min, int max)
    {
        var b = _small.AsSpan(0, 4);
        ReadExactly(b, field);
        var v = BinaryPrimitives.ReadInt32LittleEndian(b);
        if (v < min || v > max) throw new HeFormatException($"{what}: {field} = {v} is outside [{min}, {max}]");
        return v;
    }

    /// <summary>A length-prefixed blob of at most <paramref name="maxLength"/> bytes (checked before allocating).</summary>
    public byte[] ReadBlob(string field, int maxLength) => ReadBytes(ReadInt32InRange($"{field} length", 1, maxLength), field);

    /// <summary>The group count a record count implies (one group per slots-full of records), checked.</summary>
    public int ReadGroupCount(int records, int slots)
    {
        var expected = (records + slots - 1) / slots;
        return ReadInt32InRange("group count", expected, expected);
    }

    /// <summary>A group's index (checked against <paramref name="expectedIndex"/> inside a batch) and record count.</summary>
    public (int Index, int Records) ReadGroupHead(int maxIndex, int? expectedIndex, int recordLimit)
    {
        var index = ReadInt32InRange("group index", 0, maxIndex);
        if (expectedIndex is { } e && index != e) throw new HeFormatException($"{what}: group {index} where {e} was expected");
        return (index, ReadInt32InRange("group record count", 1, recordLimit));
    }

    /// <summary>Group <paramref name="g"/> of a batch of <paramref name="records"/> must hold its share of them: full groups, then the rest.</summary>
    public void CheckGroupRecords(int g, int declared, int records, int slots)
    {
        var inGroup = Math.Min(slots, records - g * slots);
        if (declared != inGroup)
            throw new HeFormatException($"{what}: group {g} declares {declared} records, {inGroup} expected from the record count");
    }

    public void ExpectEnd()
    {
        int n;
        try
        {
            n = stream.Read(_small.AsSpan(0, 1));
        }
        catch (IOException e)
        {
            throw new HeFormatException($"{what}: reading failed ({e.Message})", e);
        }
        if (n != 0) throw new HeFormatException($"{what}: unexpected trailing bytes");
    }
}
