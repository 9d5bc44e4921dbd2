using System.Security.Cryptography;
using System.Text;

namespace Serverless.Model.Preprocessing;

/// <summary>
/// Replaces direct identifiers (names, doctors, room numbers, record numbers) with keyed pseudonyms:
/// HMAC-SHA256 (RFC 2104 / FIPS 198-1) of the UTF-8 identifier, truncated to 128 bits, hex. The same key
/// gives the same pseudonym, so visits of one patient still link; without the key the mapping cannot
/// be recomputed by dictionary attack. The key is never exposed by this type (not in ToString, not logged).
/// </summary>
public sealed class Pseudonymizer : IDisposable
{
    /// <summary>At least the HMAC-SHA256 output size, as RFC 2104 section 3 recommends.</summary>
    public const int MinimumKeyBytes = 32;

    private readonly byte[] _key;
    private bool _disposed;

    public Pseudonymizer(ReadOnlySpan<byte> key)
    {
        if (key.Length < MinimumKeyBytes)
            throw new ArgumentException($"pseudonymization key must be at least {MinimumKeyBytes} bytes", nameof(key));
        _key = key.ToArray();
    }

    /// <summary>A fresh random key (RandomNumberGenerator) of <see cref="MinimumKeyBytes"/> bytes.</summary>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(MinimumKeyBytes);

    /// <summary>"p_" followed by 32 hex digits. Identifiers are trimmed and compared case-insensitively.</summary>
    public string Pseudonymize(string identifier)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(identifier);
        var normalized = identifier.Trim().ToUpperInvariant();
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(normalized), mac);
        return "p_" + Convert.ToHexStringLower(mac[..16]);
    }

    public override string ToString() => "Pseudonymizer(HMAC-SHA256, key hidden)";

    public void Dispose()
    {
        if (_disposed) return;
        CryptographicOperations.ZeroMemory(_key);
        _disposed = true;
    }
}
