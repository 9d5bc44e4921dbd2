using System.Buffers.Text;
using Microsoft.IdentityModel.Tokens;

namespace Serverless.Security.Identity;

/// <summary>
/// The public keys of an issuer outside the app's vault (an identity provider, or an operator's
/// <see cref="OfflineTokenIssuer"/>) whose ES256 tokens the app accepts too: a JWK Set (RFC 7517 section 5)
/// of P-256 public keys (RFC 7518 section 6.2.1), each named by its <c>kid</c>. Loaded once at start, from
/// the file the app setting <c>SERVERLESS_TRUSTED_TOKEN_KEYS</c> names; everything in it is checked first.
/// </summary>
public sealed class TrustedTokenKeys
{
    /// <summary>A trust file larger than this is refused unread (a JWK Set of a few keys is a few hundred bytes).</summary>
    public const int MaxFileBytes = 64 * 1024;

    /// <summary>At most this many keys (an issuer rotating keeps two or three).</summary>
    public const int MaxKeys = 16;

    private TrustedTokenKeys(IReadOnlyDictionary<string, SecurityKey> keys) => Keys = keys;

    /// <summary>The keys by <c>kid</c>.</summary>
    public IReadOnlyDictionary<string, SecurityKey> Keys { get; }

    /// <summary>Reads a JWK Set file.</summary>
    /// <exception cref="InvalidDataException">The file is too large, not a JWK Set, or holds a key that is not an ES256 public key.</exception>
    public static TrustedTokenKeys Load(string path)
    {
        using var file = File.OpenRead(path);
        if (file.Length > MaxFileBytes) throw new InvalidDataException($"The trusted token keys file is over {MaxFileBytes} bytes.");
        var content = new byte[file.Length];
        file.ReadExactly(content);
        return Parse(content);
    }

    /// <inheritdoc cref="Load"/>
    public static TrustedTokenKeys Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxFileBytes) throw new InvalidDataException($"The trusted token keys file is over {MaxFileBytes} bytes.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException)
        {
            throw new InvalidDataException("The trusted token keys file is not JSON.");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException("The trusted token keys file is not a JWK Set (an object with a \"keys\" array).");
            var count = array.GetArrayLength();
            if (count is 0 or > MaxKeys) throw new InvalidDataException($"A JWK Set of trusted token keys holds 1 to {MaxKeys} keys, not {count}.");
            var keys = new Dictionary<string, SecurityKey>(StringComparer.Ordinal);
            var index = 0;
            foreach (var jwk in array.EnumerateArray())
            {
                var (kid, key) = ReadKey(jwk, index++);
                if (!keys.TryAdd(kid, key)) throw new InvalidDataException($"Trusted token key {index - 1}: kid is used twice.");
            }
            return new TrustedTokenKeys(keys);
        }
    }

    private static (string Kid, SecurityKey Key) ReadKey(JsonElement jwk, int index)
    {
        if (jwk.ValueKind != JsonValueKind.Object) throw Bad(index, "not an object");
        // A private key has no business in a trust file: refuse it rather than hold it in memory.
        if (jwk.TryGetProperty("d", out _)) throw Bad(index, "holds a private key (\"d\"); publish only the public half");
        if (String(jwk, "kty") != "EC" || String(jwk, "crv") != "P-256") throw Bad(index, "not an EC P-256 key");
        if (jwk.TryGetProperty("alg", out _) && String(jwk, "alg") != "ES256") throw Bad(index, "alg is not ES256");
        if (jwk.TryGetProperty("use", out _) && String(jwk, "use") != "sig") throw Bad(index, "use is not sig");
        var kid = String(jwk, "kid");
        if (kid is not { Length: > 0 and <= 128 } || kid.Any(c => c is < '!' or > '~')) throw Bad(index, "kid must be 1 to 128 printable ASCII characters");
        var x = Coordinate(jwk, "x", index);
        var y = Coordinate(jwk, "y", index);
        var ec = ECDsa.Create();
        try
        {
            // ImportParameters checks that the point lies on the curve.
            ec.ImportParameters(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = x, Y = y } });
        }
        catch (CryptographicException)
        {
            ec.Dispose();
            throw Bad(index, "is not a point on P-256");
        }
        return (kid, new ECDsaSecurityKey(ec) { KeyId = kid });
    }

    /// <summary>A P-256 coordinate: base64url of exactly 32 bytes (RFC 7518 section 6.2.1.2).</summary>
    private static byte[] Coordinate(JsonElement jwk, string name, int index)
    {
        var text = String(jwk, name) ?? throw Bad(index, $"has no {name}");
        var bytes = new byte[32];
        if (Base64Url.DecodeFromChars(text, bytes, out var consumed, out var written) != System.Buffers.OperationStatus.Done
            || consumed != text.Length || written != 32)
            throw Bad(index, $"{name} is not 32 bytes of base64url");
        return bytes;
    }

    private static string? String(JsonElement jwk, string name) =>
        jwk.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static InvalidDataException Bad(int index, string why) => new($"Trusted token key {index}: {why}.");

    /// <summary>A JWK Set of one public P-256 key, named <paramref name="kid"/>: what <see cref="Parse"/> reads.</summary>
    internal static string Write(ECDsa key, string kid)
    {
        var q = key.ExportParameters(includePrivateParameters: false).Q;
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("keys");
            w.WriteStartObject();
            w.WriteString("kty", "EC");
            w.WriteString("crv", "P-256");
            w.WriteString("x", Base64Url.EncodeToString(q.X));
            w.WriteString("y", Base64Url.EncodeToString(q.Y));
            w.WriteString("use", "sig");
            w.WriteString("alg", "ES256");
            w.WriteString("kid", kid);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>The JWK thumbprint of a P-256 public key (RFC 7638 section 3: SHA-256 over the required members in lexicographic order), base64url.</summary>
    internal static string Thumbprint(ECDsa key)
    {
        var q = key.ExportParameters(includePrivateParameters: false).Q;
        var canonical = $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{Base64Url.EncodeToString(q.X)}\",\"y\":\"{Base64Url.EncodeToString(q.Y)}\"}}";
        return Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(canonical)));
    }
}
