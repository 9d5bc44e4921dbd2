namespace Serverless.Security.Envelope;

/// <summary>Which KEK protects new objects and how large their chunks are.</summary>
public sealed record EnvelopeOptions
{
    /// <summary>The wrapping key (in the key vault) that wraps every new data key.</summary>
    public string KeyName { get; init; } = "checkpoints-kek";

    /// <summary>Plaintext bytes per authenticated chunk (64 KiB: large enough that the 16-byte tag is 0.02 % overhead).</summary>
    public int ChunkSize { get; init; } = 64 * 1024;
}

/// <summary>What an envelope header says, without decrypting anything.</summary>
public sealed record EnvelopeInfo(KeyId KeyId, string Algorithm, int ChunkSize);

/// <summary>
/// Envelope encryption: every object gets a fresh 256-bit data key, its payload is sealed with
/// AES-256-GCM in framed chunks, and the data key travels in the header wrapped by the current
/// version of a KEK in the <see cref="IKeyVault"/>. The object name is bound into the header MAC
/// and every chunk, so a copy under another name does not decrypt.
/// </summary>
/// <remarks>
/// Decryption streams: a chunk is released only after its tag verifies, but a reader sees earlier
/// chunks before a later one fails. Treat an exception at any point as "the whole object is bad".
/// </remarks>
public sealed class EnvelopeEncryptor
{
    private const int DataKeyBytes = 32; // AES-256
    private readonly IKeyVault _vault;
    private readonly EnvelopeOptions _options;

    public EnvelopeEncryptor(IKeyVault vault, EnvelopeOptions? options = null)
    {
        _vault = vault ?? throw new ArgumentNullException(nameof(vault));
        _options = options ?? new EnvelopeOptions();
        if (_options.ChunkSize is < EnvelopeHeader.MinChunkSize or > EnvelopeHeader.MaxChunkSize)
            throw new ArgumentOutOfRangeException(nameof(options), $"ChunkSize must be in [{EnvelopeHeader.MinChunkSize}, {EnvelopeHeader.MaxChunkSize}].");
        KeyNames.Validate(_options.KeyName);
    }

    public EnvelopeOptions Options => _options;

    /// <summary>A readable stream of the envelope for <paramref name="plaintext"/>; encryption happens as it is read.</summary>
    public async Task<Stream> OpenEncryptStreamAsync(Stream plaintext, string objectName, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ValidateName(objectName);
        var dataKey = RandomNumberGenerator.GetBytes(DataKeyBytes);
        try
        {
            var wrapped = await _vault.WrapKeyAsync(_options.KeyName, dataKey, cancellationToken);
            var header = BuildHeader(dataKey, _options.ChunkSize, RandomNumberGenerator.GetBytes(EnvelopeHeader.NoncePrefixLength), wrapped, objectName);
            var cipher = new ChunkCipher(dataKey, header.FixedPart(), objectName);
            return new EnvelopeEncryptStream(plaintext, leaveOpen, header.ToBytes(), cipher, _options.ChunkSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Reads and authenticates the header, then returns a stream of plaintext that verifies each chunk as it is read.</summary>
    /// <exception cref="CryptographicException">Not an envelope, not authentic, or not for <paramref name="objectName"/>.</exception>
    public async Task<Stream> OpenDecryptStreamAsync(Stream envelope, string objectName, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        ValidateName(objectName);
        var header = await EnvelopeHeader.ReadAsync(envelope, cancellationToken);
        var dataKey = await UnwrapAndAuthenticateAsync(header, objectName, cancellationToken);
        try
        {
            var cipher = new ChunkCipher(dataKey, header.FixedPart(), objectName);
            return new EnvelopeDecryptStream(envelope, leaveOpen, cipher, header.ChunkSize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>Encrypts all of <paramref name="plaintext"/> into <paramref name="destination"/>.</summary>
    public async Task EncryptAsync(Stream plaintext, Stream destination, string objectName, CancellationToken cancellationToken = default)
    {
        await using var stream = await OpenEncryptStreamAsync(plaintext, objectName, leaveOpen: true, cancellationToken);
        await stream.CopyToAsync(destination, cancellationToken);
    }

    /// <summary>Decrypts all of <paramref name="envelope"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="CryptographicException">Any part of the object is not authentic.</exception>
    public async Task DecryptAsync(Stream envelope, Stream destination, string objectName, CancellationToken cancellationToken = default)
    {
        await using var stream = await OpenDecryptStreamAsync(envelope, objectName, leaveOpen: true, cancellationToken);
        await stream.CopyToAsync(destination, cancellationToken);
    }

    /// <summary>Reads the header only: which key version protects the object.</summary>
    public static async Task<EnvelopeInfo> ReadInfoAsync(Stream envelope, CancellationToken cancellationToken = default)
    {
        var header = await EnvelopeHeader.ReadAsync(envelope, cancellationToken);
        return new EnvelopeInfo(header.WrappedKey.KeyId, header.WrappedKey.Algorithm, header.ChunkSize);
    }

    /// <summary>
    /// Re-wraps the data key under the current KEK version: reads and authenticates the header from
    /// <paramref name="envelope"/> (left positioned at the first chunk) and returns the new header
    /// bytes, or null when the object is already on the current version. Chunks stay as they are.
    /// </summary>
    public async Task<byte[]?> RewrapHeaderAsync(Stream envelope, string objectName, CancellationToken cancellationToken = default)
    {
        ValidateName(objectName);
        var header = await EnvelopeHeader.ReadAsync(envelope, cancellationToken);
        var current = await _vault.GetCurrentVersionAsync(_options.KeyName, cancellationToken)
            ?? throw new KeyNotFoundException($"Key '{_options.KeyName}' has no enabled version.");
        if (header.WrappedKey.KeyId == current.Id) return null;
        var dataKey = await UnwrapAndAuthenticateAsync(header, objectName, cancellationToken);
        try
        {
            var wrapped = await _vault.WrapKeyAsync(_options.KeyName, dataKey, cancellationToken);
            return BuildHeader(dataKey, header.ChunkSize, header.NoncePrefix, wrapped, objectName).ToBytes();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    private static EnvelopeHeader BuildHeader(byte[] dataKey, int chunkSize, byte[] noncePrefix, WrappedKey wrapped, string objectName)
    {
        var unsigned = new EnvelopeHeader(chunkSize, noncePrefix, wrapped, []);
        Span<byte> macKey = stackalloc byte[32];
        ChunkCipher.DeriveKeys(dataKey, default, macKey);
        var mac = EnvelopeHeader.ComputeMac(macKey, unsigned.FixedPart(), unsigned.KeyPart(), objectName);
        CryptographicOperations.ZeroMemory(macKey);
        return unsigned with { Mac = mac };
    }

    private async Task<byte[]> UnwrapAndAuthenticateAsync(EnvelopeHeader header, string objectName, CancellationToken cancellationToken)
    {
        byte[] dataKey;
        try
        {
            dataKey = await _vault.UnwrapKeyAsync(header.WrappedKey, cancellationToken);
        }
        catch (KeyNotFoundException e)
        {
            throw new CryptographicException($"The key version '{header.WrappedKey.KeyId}' that protects '{objectName}' is unknown or disabled.", e);
        }
        if (dataKey.Length != DataKeyBytes)
        {
            CryptographicOperations.ZeroMemory(dataKey);
            throw new CryptographicException("The unwrapped data key has the wrong length.");
        }
        Span<byte> macKey = stackalloc byte[32];
        ChunkCipher.DeriveKeys(dataKey, default, macKey);
        var expected = EnvelopeHeader.ComputeMac(macKey, header.FixedPart(), header.KeyPart(), objectName);
        CryptographicOperations.ZeroMemory(macKey);
        if (!CryptographicOperations.FixedTimeEquals(expected, header.Mac))
        {
            CryptographicOperations.ZeroMemory(dataKey);
            throw new CryptographicException($"The envelope header is not authentic for '{objectName}' (modified, or copied from another name).");
        }
        return dataKey;
    }

    private static void ValidateName(string objectName)
    {
        ArgumentException.ThrowIfNullOrEmpty(objectName);
        if (objectName.Length > 1024) throw new ArgumentException("Object names are at most 1024 characters.", nameof(objectName));
    }
}
