using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Serverless.Storage;
using Serverless.Security.Keys;

namespace Serverless.Security.Pseudonymization;

/// <summary>
/// Keyed pseudonyms for direct identifiers (names, record numbers, account numbers): a token is
/// HMAC-SHA256(key, domain | 0x00 | normalized value) truncated to 128 bits, base64url, prefixed
/// "pt_". Deterministic, so records of one person still join; without the key a token reveals
/// nothing and cannot be recomputed from a guessed value. The HMAC key is a random 256-bit key kept
/// wrapped by a KEK of the vault (in the blob store), unwrapped into memory only.
/// </summary>
/// <remarks>
/// Normalization: trimmed, Unicode NFC, upper-cased (invariant), inner whitespace collapsed, so
/// "  jane  DOE" and "Jane Doe" give one token. Domains ("patient-name", "mrn") keep tokens of
/// different fields apart.
/// </remarks>
public sealed class Pseudonymizer : IDisposable
{
    private const int TokenBytes = 16; // 128-bit tokens: collisions negligible below ~2^64 identifiers
    private readonly byte[] _key;

    private Pseudonymizer(byte[] key) => _key = key;

    /// <summary>
    /// Loads the pseudonymization key wrapped at <paramref name="blobName"/>, creating it on first use
    /// (If-None-Match: *, so two processes starting together end with one key).
    /// </summary>
    public static async Task<Pseudonymizer> OpenAsync(IKeyVault vault, string kekName, IBlobStore store, string blobName = "keys/pseudonymization.key.json", CancellationToken cancellationToken = default) =>
        new(await WrappedDataKey.LoadOrCreateAsync(vault, kekName, store, blobName, cancellationToken));

    /// <summary>For tests and tools that hold a key already (32 bytes).</summary>
    internal static Pseudonymizer FromKey(byte[] key) =>
        key.Length == 32 ? new Pseudonymizer(key.ToArray()) : throw new ArgumentException("The key is 32 bytes.", nameof(key));

    /// <summary>The pseudonym of <paramref name="value"/> in <paramref name="domain"/>.</summary>
    public string Tokenize(string domain, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(domain);
        ArgumentNullException.ThrowIfNull(value);
        var normalized = Normalize(value);
        var input = Encoding.UTF8.GetBytes(domain + "\0" + normalized);
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, input, mac);
        return "pt_" + Base64Url.EncodeToString(mac[..TokenBytes]);
    }

    internal static string Normalize(string value)
    {
        var text = value.Trim().Normalize(NormalizationForm.FormC).ToUpperInvariant();
        var builder = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                if (!space) builder.Append(' ');
                space = true;
            }
            else
            {
                builder.Append(c);
                space = false;
            }
        }
        return builder.ToString();
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_key);

}
