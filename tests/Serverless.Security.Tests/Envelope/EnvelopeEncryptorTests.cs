using System.Buffers.Binary;
using System.Security.Cryptography;
using Serverless.Security.Envelope;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Envelope;

public sealed class EnvelopeEncryptorTests(KeyringFixture keys) : IClassFixture<KeyringFixture>
{
    private const int Chunk = 256;

    private async Task<EnvelopeEncryptor> NewEncryptorAsync(int chunkSize = Chunk) =>
        new(keys.Keyring, new EnvelopeOptions { KeyName = await keys.NewKeyAsync(KeyKind.Wrapping), ChunkSize = chunkSize });

    private static async Task<byte[]> EncryptAsync(EnvelopeEncryptor encryptor, byte[] plaintext, string name)
    {
        using var output = new MemoryStream();
        await encryptor.EncryptAsync(new MemoryStream(plaintext), output, name);
        return output.ToArray();
    }

    private static async Task<byte[]> DecryptAsync(EnvelopeEncryptor encryptor, byte[] envelope, string name)
    {
        using var output = new MemoryStream();
        await encryptor.DecryptAsync(new MemoryStream(envelope), output, name);
        return output.ToArray();
    }

    /// <summary>Header length, from the layout: 18 fixed + 2 + key part + 32 MAC.</summary>
    private static int HeaderLength(byte[] envelope) => 18 + 2 + BinaryPrimitives.ReadUInt16BigEndian(envelope.AsSpan(18)) + 32;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(Chunk - 1)]
    [InlineData(Chunk)]
    [InlineData(Chunk + 1)]
    [InlineData(5 * Chunk + 17)]
    [InlineData(8 * Chunk)]
    public async Task Round_trip_at_chunk_boundaries(int length)
    {
        var encryptor = await NewEncryptorAsync();
        var plaintext = RandomNumberGenerator.GetBytes(length);
        var envelope = await EncryptAsync(encryptor, plaintext, "models/m1.ckpt");
        var chunks = Math.Max(1, (length + Chunk - 1) / Chunk);
        Assert.Equal(HeaderLength(envelope) + length + chunks * 16, envelope.Length);
        Assert.Equal(plaintext, await DecryptAsync(encryptor, envelope, "models/m1.ckpt"));
    }

    [Fact]
    public async Task Streams_with_the_default_chunk_size_through_small_reads()
    {
        var encryptor = await NewEncryptorAsync(64 * 1024);
        var plaintext = RandomNumberGenerator.GetBytes(300_000);
        var envelope = await EncryptAsync(encryptor, plaintext, "big");
        await using var stream = await encryptor.OpenDecryptStreamAsync(new MemoryStream(envelope), "big");
        var result = new MemoryStream();
        var buffer = new byte[1000];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) result.Write(buffer, 0, n); // sync path, odd-sized reads
        Assert.Equal(plaintext, result.ToArray());
    }

    [Fact]
    public async Task Same_plaintext_encrypts_differently_each_time()
    {
        var encryptor = await NewEncryptorAsync();
        var plaintext = new byte[100];
        Assert.NotEqual(await EncryptAsync(encryptor, plaintext, "a"), await EncryptAsync(encryptor, plaintext, "a"));
    }

    [Fact]
    public async Task Any_flipped_byte_is_rejected()
    {
        var encryptor = await NewEncryptorAsync();
        var envelope = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(3 * Chunk + 5), "x");
        // Every byte of the header and a sample of payload bytes (first, middle and last chunk, tags included).
        var positions = Enumerable.Range(0, HeaderLength(envelope)).Concat([HeaderLength(envelope), envelope.Length / 2, envelope.Length - 17, envelope.Length - 1]);
        foreach (var position in positions)
        {
            var tampered = envelope.ToArray();
            tampered[position] ^= 0x01;
            await Assert.ThrowsAnyAsync<Exception>(() => DecryptAsync(encryptor, tampered, "x"));
        }
    }

    [Fact]
    public async Task Errors_are_cryptographic_exceptions_for_tampered_header_and_payload()
    {
        var encryptor = await NewEncryptorAsync();
        var envelope = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(2 * Chunk), "x");
        var header = envelope.ToArray();
        header[HeaderLength(envelope) - 1] ^= 0x80; // last MAC byte
        Assert.Contains("header is not authentic", (await Assert.ThrowsAsync<CryptographicException>(() => DecryptAsync(encryptor, header, "x"))).Message);
        var payload = envelope.ToArray();
        payload[HeaderLength(envelope) + 3] ^= 0x80;
        Assert.Contains("chunk 0", (await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, payload, "x"))).Message);
    }

    [Fact]
    public async Task A_copy_under_another_name_does_not_decrypt()
    {
        var encryptor = await NewEncryptorAsync();
        var envelope = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(1000), "federations/a/global.ckpt");
        var error = await Assert.ThrowsAsync<CryptographicException>(() => DecryptAsync(encryptor, envelope, "federations/b/global.ckpt"));
        Assert.Contains("another name", error.Message);
    }

    [Fact]
    public async Task Truncation_at_a_chunk_boundary_inside_a_chunk_or_in_the_header_is_rejected()
    {
        var encryptor = await NewEncryptorAsync();
        var envelope = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(3 * Chunk + 10), "t");
        var header = HeaderLength(envelope);
        foreach (var length in new[] { header + 2 * (Chunk + 16), header + Chunk + 16, envelope.Length - 1, header, header - 5, 3 })
            await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, envelope[..length], "t"));

        // An exact multiple of the chunk size: dropping the whole final chunk leaves a full, non-final chunk last.
        var even = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(2 * Chunk), "t");
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, even[..(HeaderLength(even) + Chunk + 16)], "t"));
    }

    [Fact]
    public async Task Reordered_duplicated_or_appended_chunks_are_rejected()
    {
        var encryptor = await NewEncryptorAsync();
        var envelope = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(3 * Chunk), "r");
        var header = HeaderLength(envelope);
        const int sealedChunk = Chunk + 16;
        byte[] Chunk_(int i) => envelope.AsSpan(header + i * sealedChunk, sealedChunk).ToArray();
        byte[] Assemble(params int[] order) => [.. envelope.AsSpan(0, header), .. order.SelectMany(Chunk_)];

        Assert.Equal(envelope, Assemble(0, 1, 2));
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, Assemble(1, 0, 2), "r"));
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, Assemble(0, 2, 1), "r"));
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, Assemble(0, 0, 1, 2), "r"));
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, [.. envelope, 0x00], "r"));
    }

    [Fact]
    public async Task Chunks_from_another_object_cannot_be_spliced_in()
    {
        var encryptor = await NewEncryptorAsync();
        var a = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(2 * Chunk), "same");
        var b = await EncryptAsync(encryptor, RandomNumberGenerator.GetBytes(2 * Chunk), "same");
        var spliced = a.ToArray();
        Array.Copy(b, HeaderLength(b), spliced, HeaderLength(a), Chunk + 16);
        await Assert.ThrowsAnyAsync<CryptographicException>(() => DecryptAsync(encryptor, spliced, "same"));
    }

    [Fact]
    public async Task Rewrapped_header_keeps_chunks_byte_for_byte_and_still_decrypts()
    {
        var encryptor = await NewEncryptorAsync();
        var plaintext = RandomNumberGenerator.GetBytes(2 * Chunk + 3);
        var envelope = await EncryptAsync(encryptor, plaintext, "w");
        Assert.Null(await encryptor.RewrapHeaderAsync(new MemoryStream(envelope), "w")); // already current
        var v2 = await keys.Keyring.RotateKeyAsync(encryptor.Options.KeyName);

        var source = new MemoryStream(envelope);
        var header = await encryptor.RewrapHeaderAsync(source, "w");
        Assert.NotNull(header);
        var payload = envelope[HeaderLength(envelope)..];
        byte[] rewrapped = [.. header!, .. payload];
        Assert.Equal(HeaderLength(envelope), source.Position);
        Assert.Equal(v2.Id, (await EnvelopeEncryptor.ReadInfoAsync(new MemoryStream(rewrapped))).KeyId);
        Assert.Equal(plaintext, await DecryptAsync(encryptor, rewrapped, "w"));
    }

    [Fact]
    public async Task Garbage_is_not_an_envelope()
    {
        var encryptor = await NewEncryptorAsync();
        await Assert.ThrowsAsync<CryptographicException>(() => DecryptAsync(encryptor, "not an envelope at all, just text"u8.ToArray(), "g"));
        await Assert.ThrowsAsync<CryptographicException>(() => DecryptAsync(encryptor, [], "g"));
    }
}
