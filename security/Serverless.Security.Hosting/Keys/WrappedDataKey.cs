using System.Buffers.Text;
using System.Security.Cryptography;

namespace Serverless.Security.Keys;

/// <summary>
/// A random 256-bit data key (an HMAC or tokenization key) kept in a blob wrapped by a KEK of the vault,
/// unwrapped into memory only. The first process creates it; the write is create-if-absent
/// (If-None-Match: *), so two processes starting together end with one key.
/// </summary>
public static class WrappedDataKey
{
    /// <summary>Length of the data key: 32 bytes, at least the HMAC-SHA256 output length (RFC 2104 §3).</summary>
    public const int KeyBytes = 32;

    /// <summary>The unwrapped key at <paramref name="blobName"/>, created on first use. The caller zeroes it when done.</summary>
    public static async Task<byte[]> LoadOrCreateAsync(IKeyVault vault, string kekName, IBlobStore store, string blobName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(store);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            await using (var existing = await store.GetAsync(blobName, cancellationToken))
            {
                if (existing is not null)
                {
                    StoredKey? stored;
                    try { stored = await JsonSerializer.DeserializeAsync<StoredKey>(existing.Content, cancellationToken: cancellationToken); }
                    catch (JsonException) { stored = null; }
                    if (stored is not { KeyId: { Length: > 0 }, Algorithm: { Length: > 0 }, Wrapped: { Length: > 0 } })
                        throw new CryptographicException($"'{blobName}' is not a wrapped key.");
                    var wrapped = new WrappedKey(KeyId.Parse(stored.KeyId), stored.Algorithm, Base64Url.DecodeFromChars(stored.Wrapped));
                    var key = await vault.UnwrapKeyAsync(wrapped, cancellationToken);
                    if (key.Length != KeyBytes)
                    {
                        CryptographicOperations.ZeroMemory(key);
                        throw new CryptographicException($"The key in '{blobName}' has the wrong length.");
                    }
                    return key;
                }
            }
            var fresh = RandomNumberGenerator.GetBytes(KeyBytes);
            var wrap = await vault.WrapKeyAsync(kekName, fresh, cancellationToken);
            var json = JsonSerializer.SerializeToUtf8Bytes(new StoredKey(wrap.KeyId.ToString(), wrap.Algorithm, Base64Url.EncodeToString(wrap.Ciphertext)));
            try
            {
                await store.PutAsync(blobName, new MemoryStream(json), BlobCondition.MustNotExist, cancellationToken);
                return fresh;
            }
            catch (BlobConditionFailedException)
            {
                CryptographicOperations.ZeroMemory(fresh); // another process won the race: use its key
            }
        }
        throw new CryptographicException($"Could not create or load '{blobName}'.");
    }

    private sealed record StoredKey(string KeyId, string Algorithm, string Wrapped);
}
