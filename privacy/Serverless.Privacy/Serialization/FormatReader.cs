using System.Buffers.Binary;

namespace Serverless.Privacy.Serialization;

/// <summary>Bounds-checked little-endian reader: every read past the end is a <see cref="HeFormatException"/>.</summary>
internal ref struct FormatReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public FormatReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public readonly int Remaining => _data.Length - _position;

    public ReadOnlySpan<byte> ReadBytes(int count, string what)
    {
        if (count < 0 || count > Remaining)
            throw new HeFormatException($"truncated input: {what} needs {count} bytes, {Remaining} left");
        var s = _data.Slice(_position, count);
        _position += count;
        return s;
    }

    public byte ReadByte(string what) => ReadBytes(1, what)[0];

    public ushort ReadUInt16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2, what));

    public int ReadInt32(string what) => BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4, what));

    public ulong ReadUInt64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8, what));

    public double ReadDouble(string what) => BinaryPrimitives.ReadDoubleLittleEndian(ReadBytes(8, what));

    /// <summary>An int in [min, max], else a format error naming the field.</summary>
    public int ReadInt32InRange(string what, int min, int max)
    {
        var v = ReadInt32(what);
        if (v < min || v > max) throw new HeFormatException($"{what} = {v} is outside [{min}, {max}]");
        return v;
    }

    public readonly void ExpectEnd(string what)
    {
        if (Remaining != 0) throw new HeFormatException($"{Remaining} unexpected trailing bytes after {what}");
    }
}

/// <summary>Little-endian writer into a growing buffer.</summary>
internal sealed class FormatWriter
{
    private byte[] _buffer;
    private int _length;

    public FormatWriter(int capacity) => _buffer = new byte[Math.Max(16, capacity)];

    private Span<byte> Grow(int count)
    {
        if (_length + count > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
        var s = _buffer.AsSpan(_length, count);
        _length += count;
        return s;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Grow(bytes.Length));

    public void WriteByte(byte b) => Grow(1)[0] = b;

    public void WriteUInt16(ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Grow(2), v);

    public void WriteInt32(int v) => BinaryPrimitives.WriteInt32LittleEndian(Grow(4), v);

    public void WriteUInt64(ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Grow(8), v);

    public void WriteDouble(double v) => BinaryPrimitives.WriteDoubleLittleEndian(Grow(8), v);

    public void WriteWords(ReadOnlySpan<ulong> words)
    {
        var dst = Grow(words.Length * 8);
        if (BitConverter.IsLittleEndian) System.Runtime.InteropServices.MemoryMarshal.AsBytes(words).CopyTo(dst);
        else for (var i = 0; i < words.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(dst[(i * 8)..], words[i]);
    }

    public byte[] ToArray() => _buffer.AsSpan(0, _length).ToArray();
}
