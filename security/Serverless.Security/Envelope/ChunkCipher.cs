using System.Buffers.Binary;
using System.Diagnostics;

namespace Serverless.Security.Envelope;

/// <summary>
/// AES-256-GCM over framed chunks, after the STREAM construction (Hoang, Reyhanitabar, Rogaway,
/// Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015):
/// chunk i uses nonce = 8-byte random prefix | u32 i (NIST SP 800-38D §8.2.1 deterministic
/// construction; the data key is fresh per object, so nonces never repeat under one key), and
/// AAD = SHA-256(fixed header | object name) | u64 i | last-chunk flag. Reordering changes i,
/// truncation drops the flag, renaming changes the binding: each makes the tag check fail.
/// </summary>
internal sealed class ChunkCipher : IDisposable
{
    public const int TagLength = 16;
    private const int AadLength = 32 + 8 + 1;
    private static readonly byte[] ChunkKeyInfo = "serverless-envelope-v1/chunk-key"u8.ToArray();
    private static readonly byte[] MacKeyInfo = "serverless-envelope-v1/header-mac-key"u8.ToArray();
    private static readonly byte[] BindingLabel = "serverless-envelope-v1/binding"u8.ToArray();

    private readonly AesGcm _gcm;
    private readonly byte[] _nonce = new byte[12];
    private readonly byte[] _aad = new byte[AadLength];

    public ChunkCipher(ReadOnlySpan<byte> dataKey, byte[] fixedHeader, string objectName)
    {
        Span<byte> chunkKey = stackalloc byte[32];
        DeriveKeys(dataKey, chunkKey, default);
        _gcm = new AesGcm(chunkKey, TagLength);
        CryptographicOperations.ZeroMemory(chunkKey);
        fixedHeader.AsSpan(10, EnvelopeHeader.NoncePrefixLength).CopyTo(_nonce);

        var name = Encoding.UTF8.GetBytes(objectName);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(BindingLabel);
        sha.AppendData(fixedHeader);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)name.Length);
        sha.AppendData(length);
        sha.AppendData(name);
        sha.GetHashAndReset(_aad);
    }

    /// <summary>HKDF-SHA256 (RFC 5869) separates the GCM key from the header-MAC key.</summary>
    public static void DeriveKeys(ReadOnlySpan<byte> dataKey, Span<byte> chunkKey, Span<byte> macKey)
    {
        if (!chunkKey.IsEmpty) HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, chunkKey, salt: default, ChunkKeyInfo);
        if (!macKey.IsEmpty) HKDF.DeriveKey(HashAlgorithmName.SHA256, dataKey, macKey, salt: default, MacKeyInfo);
    }

    public void Encrypt(long index, bool last, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        Debug.Assert(output.Length == plaintext.Length + TagLength);
        Prepare(index, last);
        _gcm.Encrypt(_nonce, plaintext, output[..plaintext.Length], output[plaintext.Length..], _aad);
    }

    /// <exception cref="CryptographicException">The chunk is not authentic at this position.</exception>
    public void Decrypt(long index, bool last, ReadOnlySpan<byte> input, Span<byte> plaintext)
    {
        Debug.Assert(input.Length == plaintext.Length + TagLength);
        Prepare(index, last);
        try
        {
            _gcm.Decrypt(_nonce, input[..plaintext.Length], input[plaintext.Length..], plaintext, _aad);
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new CryptographicException(
                $"Envelope chunk {index} failed authentication: the object was modified, truncated, reordered or renamed.", e);
        }
    }

    private void Prepare(long index, bool last)
    {
        if ((ulong)index > uint.MaxValue) throw new CryptographicException("Envelope object has too many chunks (2^32 limit).");
        BinaryPrimitives.WriteUInt32BigEndian(_nonce.AsSpan(8), (uint)index);
        BinaryPrimitives.WriteUInt64BigEndian(_aad.AsSpan(32), (ulong)index);
        _aad[40] = last ? (byte)1 : (byte)0;
    }

    public void Dispose() => _gcm.Dispose();
}
