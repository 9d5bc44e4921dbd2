namespace Serverless.Security.Keys;

/// <summary>
/// Key-encryption keys (KEKs) and signing keys with names and versions, shaped like Azure Key
/// Vault keys: the caller never sees key material, only asks the vault to wrap, unwrap, sign and
/// verify. Every key name has one or more versions; the newest enabled one is "current".
/// </summary>
/// <remarks>
/// Backends: <see cref="LocalKeyring"/> (embedded default, a sealed file in the data directory)
/// and <see cref="AzureKeyVaultClient"/> (Azure Key Vault keys REST).
/// </remarks>
public interface IKeyVault
{
    /// <summary>Creates <paramref name="name"/> with a first version; fails if the name exists.</summary>
    /// <exception cref="KeyVaultException">The name exists, is malformed, or the backend refused.</exception>
    Task<KeyVersionInfo> CreateKeyAsync(string name, KeyKind kind, CancellationToken cancellationToken = default);

    /// <summary>Adds a new version of an existing key and makes it current. Old versions stay usable for unwrap and verify.</summary>
    /// <exception cref="KeyNotFoundException">No key with that name.</exception>
    Task<KeyVersionInfo> RotateKeyAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Every version of the key, oldest first.</summary>
    /// <exception cref="KeyNotFoundException">No key with that name.</exception>
    Task<IReadOnlyList<KeyVersionInfo>> ListVersionsAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>The newest enabled version, or null when the key does not exist or every version is disabled.</summary>
    Task<KeyVersionInfo?> GetCurrentVersionAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Disables one version: it can no longer wrap, unwrap, sign or verify.</summary>
    /// <exception cref="KeyNotFoundException">No such key version.</exception>
    Task DisableVersionAsync(KeyId id, CancellationToken cancellationToken = default);

    /// <summary>Wraps (encrypts) a data key with the current version of the wrapping key <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No enabled version.</exception>
    Task<WrappedKey> WrapKeyAsync(string name, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default);

    /// <summary>Unwraps a data key wrapped by <see cref="WrapKeyAsync"/> with exactly the version it names.</summary>
    /// <exception cref="System.Security.Cryptography.CryptographicException">The wrapped key is not authentic for that key version.</exception>
    /// <exception cref="KeyNotFoundException">The version does not exist or is disabled.</exception>
    Task<byte[]> UnwrapKeyAsync(WrappedKey wrapped, CancellationToken cancellationToken = default);

    /// <summary>Signs a SHA-256 digest with the current version of the signing key (ES256: IEEE P1363 r||s).</summary>
    Task<KeySignature> SignAsync(string name, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default);

    /// <summary>Verifies a signature with exactly the version it names; false for a wrong signature or a disabled / unknown version.</summary>
    Task<bool> VerifyAsync(KeySignature signature, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default);

    /// <summary>The public half of a signing key version as DER SubjectPublicKeyInfo (for JWT validation keys).</summary>
    /// <exception cref="KeyNotFoundException">No such version, or it is not a signing key.</exception>
    Task<byte[]> GetPublicKeyAsync(KeyId id, CancellationToken cancellationToken = default);
}

/// <summary>What a key is for: wrapping data keys, or signing digests.</summary>
public enum KeyKind
{
    Wrapping = 1,
    Signing = 2,
}

/// <summary>One key version. <see cref="ToString"/> is "name/version", the form stored in headers and JWT kids.</summary>
public readonly record struct KeyId(string Name, string Version)
{
    public override string ToString() => $"{Name}/{Version}";

    public static KeyId Parse(string value)
    {
        var slash = value.IndexOf('/');
        if (slash <= 0 || slash == value.Length - 1 || value.IndexOf('/', slash + 1) >= 0)
            throw new FormatException($"'{value}' is not a key id of the form name/version.");
        return new KeyId(value[..slash], value[(slash + 1)..]);
    }
}

/// <summary>The public state of one key version.</summary>
public sealed record KeyVersionInfo(KeyId Id, KeyKind Kind, string Algorithm, bool Enabled, DateTimeOffset CreatedAt);

/// <summary>A data key encrypted under one KEK version, and the algorithm used.</summary>
public sealed record WrappedKey(KeyId KeyId, string Algorithm, byte[] Ciphertext);

/// <summary>A signature, the key version that made it and its algorithm.</summary>
public sealed record KeySignature(KeyId KeyId, string Algorithm, byte[] Value);

/// <summary>A key vault operation failed for a reason other than a missing key or a bad ciphertext.</summary>
public sealed class KeyVaultException(string message, Exception? inner = null, int? status = null) : Exception(message, inner)
{
    /// <summary>The HTTP status the vault answered with, when the refusal came from a REST call; callers branch on it, never on the message.</summary>
    public int? Status { get; } = status;
}

/// <summary>Algorithm names as JOSE (RFC 7518) and Azure Key Vault spell them.</summary>
public static class KeyAlgorithms
{
    /// <summary>AES-256-GCM key wrapping (RFC 7518 §4.7 "A256GCMKW"): 96-bit random nonce, 128-bit tag, key id as AAD.</summary>
    public const string A256GcmKw = "A256GCMKW";

    /// <summary>RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 §7.1; Key Vault "RSA-OAEP-256").</summary>
    public const string RsaOaep256 = "RSA-OAEP-256";

    /// <summary>ECDSA over P-256 with SHA-256 (RFC 7518 §3.4), signature as r||s (64 bytes).</summary>
    public const string Es256 = "ES256";

    /// <summary>RSASSA-PSS with SHA-256 (RFC 7518 §3.5).</summary>
    public const string Ps256 = "PS256";
}

internal static class KeyNames
{
    // Azure Key Vault's rule for key names: 1-127 characters of 0-9, a-z, A-Z and '-'.
    public static void Validate(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Length > 127)
            throw new ArgumentException($"Key name '{name}' is longer than 127 characters.", nameof(name));
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-'))
                throw new ArgumentException($"Key name '{name}' may contain only letters, digits and '-'.", nameof(name));
        }
    }

    public static void ValidateDigest(ReadOnlyMemory<byte> digest)
    {
        if (digest.Length != 32)
            throw new ArgumentException($"A SHA-256 digest is 32 bytes, got {digest.Length}.", nameof(digest));
    }
}
