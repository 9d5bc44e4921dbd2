using System.Buffers.Binary;

namespace Serverless.Security.Envelope;

/// <summary>
/// The envelope header. Layout (big-endian):
/// <code>
/// fixed part (18 bytes, bound into every chunk's AAD; never changes):
///   "SLENV" | format u8 = 1 | chunk size u32 | nonce prefix 8 bytes
/// key part (replaced by a re-wrap):
///   u16 length | u8 len + KEK name | u8 len + KEK version | u8 len + algorithm | u16 len + wrapped data key
/// header MAC (32 bytes): HMAC-SHA256(mac key, fixed part | key part | u32 len + object name)
/// </code>
/// The MAC key is derived from the data key, so only someone who can unwrap the data key can
/// forge a header; a re-wrap (which unwraps anyway) recomputes it.
/// </summary>
internal sealed record EnvelopeHeader(int ChunkSize, byte[] NoncePrefix, WrappedKey WrappedKey, byte[] Mac)
{
    public static ReadOnlySpan<byte> Magic => "SLENV"u8;
    public const byte FormatVersion = 1;
    public const int FixedLength = 5 + 1 + 4 + NoncePrefixLength;
    public const int NoncePrefixLength = 8;
    public const int MacLength = 32;
    public const int MinChunkSize = 256;
    public const int MaxChunkSize = 16 * 1024 * 1024;
    private const int MaxKeyPartLength = 8 * 1024;

    public byte[] FixedPart()
    {
        var fixedPart = new byte[FixedLength];
        Magic.CopyTo(fixedPart);
        fixedPart[5] = FormatVersion;
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart.AsSpan(6), (uint)ChunkSize);
        NoncePrefix.CopyTo(fixedPart, 10);
        return fixedPart;
    }

    public byte[] KeyPart()
    {
        var name = Utf8(WrappedKey.KeyId.Name, byte.MaxValue, "KEK name");
        var version = Utf8(WrappedKey.KeyId.Version, byte.MaxValue, "KEK version");
        var alg = Utf8(WrappedKey.Algorithm, byte.MaxValue, "algorithm");
        if (WrappedKey.Ciphertext.Length > ushort.MaxValue) throw new CryptographicException("The wrapped key is too long for the header.");
        var length = 1 + name.Length + 1 + version.Length + 1 + alg.Length + 2 + WrappedKey.Ciphertext.Length;
        if (length > MaxKeyPartLength) throw new CryptographicException("The key part is too long for the header.");
        var part = new byte[2 + length];
        var span = part.AsSpan();
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)length);
        var at = 2;
        foreach (var field in (ReadOnlySpan<byte[]>)[name, version, alg])
        {
            part[at++] = (byte)field.Length;
            field.CopyTo(part, at);
            at += field.Length;
        }
        BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)WrappedKey.Ciphertext.Length);
        WrappedKey.Ciphertext.CopyTo(part, at + 2);
        return part;
    }

    /// <summary>The serialized header: fixed part, key part, MAC.</summary>
    public byte[] ToBytes()
    {
        var fixedPart = FixedPart();
        var keyPart = KeyPart();
        var bytes = new byte[fixedPart.Length + keyPart.Length + MacLength];
        fixedPart.CopyTo(bytes, 0);
        keyPart.CopyTo(bytes, fixedPart.Length);
        Mac.CopyTo(bytes, fixedPart.Length + keyPart.Length);
        return bytes;
    }

    /// <summary>HMAC-SHA256 over the fixed part, the key part and the object name.</summary>
    public static byte[] ComputeMac(ReadOnlySpan<byte> macKey, byte[] fixedPart, byte[] keyPart, string objectName)
    {
        var name = Encoding.UTF8.GetBytes(objectName);
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, macKey);
        hmac.AppendData(fixedPart);
        hmac.AppendData(keyPart);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)name.Length);
        hmac.AppendData(length);
        hmac.AppendData(name);
        return hmac.GetHashAndReset();
    }

    /// <summary>Reads and validates the structure of a header (not its MAC: that needs the data key).</summary>
    /// <exception cref="CryptographicException">Not an envelope, an unknown format, or a malformed header.</exception>
    public static async Task<EnvelopeHeader> ReadAsync(Stream source, CancellationToken cancellationToken)
    {
        var fixedPart = new byte[FixedLength + 2];
        await ReadExactAsync(source, fixedPart, "header", cancellationToken);
        if (!fixedPart.AsSpan(0, 5).SequenceEqual(Magic)) throw new CryptographicException("Not an envelope-encrypted object (bad magic).");
        if (fixedPart[5] != FormatVersion) throw new CryptographicException($"Unknown envelope format version {fixedPart[5]}.");
        var chunkSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(6));
        if (chunkSize is < MinChunkSize or > MaxChunkSize) throw new CryptographicException($"Envelope chunk size {chunkSize} is out of range.");
        var noncePrefix = fixedPart.AsSpan(10, NoncePrefixLength).ToArray();
        var keyPartLength = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(FixedLength));
        if (keyPartLength is 0 or > MaxKeyPartLength) throw new CryptographicException("Envelope key part length is out of range.");
        var rest = new byte[keyPartLength + MacLength];
        await ReadExactAsync(source, rest, "header", cancellationToken);

        var at = 0;
        var name = ReadField(rest, ref at, keyPartLength);
        var version = ReadField(rest, ref at, keyPartLength);
        var alg = ReadField(rest, ref at, keyPartLength);
        if (at + 2 > keyPartLength) throw new CryptographicException("Envelope header is malformed (wrapped key length).");
        var wrappedLength = BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(at));
        at += 2;
        if (at + wrappedLength != keyPartLength || wrappedLength == 0) throw new CryptographicException("Envelope header is malformed (wrapped key).");
        var wrapped = rest.AsSpan(at, wrappedLength).ToArray();
        var mac = rest.AsSpan(keyPartLength, MacLength).ToArray();
        if (name.Length == 0 || version.Length == 0 || alg.Length == 0) throw new CryptographicException("Envelope header names an empty key or algorithm.");
        return new EnvelopeHeader((int)chunkSize, noncePrefix, new WrappedKey(new KeyId(name, version), alg, wrapped), mac);
    }

    private static string ReadField(byte[] buffer, ref int at, int limit)
    {
        if (at >= limit) throw new CryptographicException("Envelope header is malformed (truncated field).");
        int length = buffer[at++];
        if (at + length > limit) throw new CryptographicException("Envelope header is malformed (field overruns).");
        string value;
        try { value = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer, at, length); }
        catch (ArgumentException e) { throw new CryptographicException("Envelope header is malformed (not UTF-8).", e); }
        at += length;
        return value;
    }

    private static byte[] Utf8(string value, int max, string what)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        if (bytes.Length is 0 || bytes.Length > max) throw new CryptographicException($"The {what} must be 1..{max} UTF-8 bytes.");
        return bytes;
    }

    internal static async Task ReadExactAsync(Stream source, Memory<byte> buffer, string what, CancellationToken cancellationToken)
    {
        var read = await source.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        if (read != buffer.Length) throw new CryptographicException($"The envelope {what} is truncated.");
    }
}
