using System.Buffers.Text;

namespace Serverless.Security.Identity;

/// <summary>
/// An operator's own ES256 token issuer, kept in a directory of its own and never on the server: the
/// private key in <c>issuer.key</c> (PKCS#8 PEM, 0600) and its public half as a JWK Set in
/// <c>issuer.jwks.json</c>, which the app trusts through <c>SERVERLESS_TRUSTED_TOKEN_KEYS</c>
/// (<see cref="TrustedTokenKeys"/>). It stands where an identity provider stands in production:
/// <c>serverless-client admin issuer create</c> makes one, <c>admin token issue</c> signs with it.
/// The key id is the key's RFC 7638 thumbprint, so it cannot collide with a vault key's "name/version".
/// </summary>
public sealed class OfflineTokenIssuer : IDisposable
{
    public const string KeyFileName = "issuer.key";
    public const string JwksFileName = "issuer.jwks.json";

    private readonly ECDsa _key;
    private readonly TokenOptions _options;
    private readonly TimeProvider _time;

    private OfflineTokenIssuer(ECDsa key, TokenOptions? options, TimeProvider? time)
    {
        _key = key;
        _options = options ?? new TokenOptions();
        _time = time ?? TimeProvider.System;
        KeyId = TrustedTokenKeys.Thumbprint(key);
    }

    /// <summary>The <c>kid</c> of every token this issuer signs.</summary>
    public string KeyId { get; }

    /// <summary>A fresh P-256 key from the platform's CSPRNG.</summary>
    public static OfflineTokenIssuer Create(TokenOptions? options = null, TimeProvider? time = null) =>
        new(ECDsa.Create(ECCurve.NamedCurves.nistP256), options, time);

    /// <summary>Writes <see cref="KeyFileName"/> (0600) and <see cref="JwksFileName"/>; refuses to overwrite an issuer.</summary>
    public void Save(string directory)
    {
        var keyPath = Path.Combine(directory, KeyFileName);
        if (File.Exists(keyPath)) throw new InvalidOperationException($"An issuer already exists at '{keyPath}'; refusing to overwrite it.");
        Directory.CreateDirectory(directory);
        var pem = Encoding.ASCII.GetBytes(_key.ExportPkcs8PrivateKeyPem() + "\n");
        try
        {
            LocalKeyring.WriteOwnerOnlyAtomically(keyPath, pem);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pem);
        }
        File.WriteAllText(Path.Combine(directory, JwksFileName), PublicJwks());
    }

    /// <summary>Loads an issuer saved with <see cref="Save"/>; refuses a key file readable by others, or a key that is not P-256.</summary>
    public static OfflineTokenIssuer Load(string directory, TokenOptions? options = null, TimeProvider? time = null)
    {
        var keyPath = Path.Combine(directory, KeyFileName);
        if (!File.Exists(keyPath)) throw new FileNotFoundException($"No token issuer at '{keyPath}' (run 'admin issuer create --out {directory}' first).");
        LocalKeyring.RequireOwnerOnly(keyPath);
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(keyPath));
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
                throw new CryptographicException("the issuer key is not a P-256 key");
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new InvalidDataException($"'{keyPath}' is not an ES256 private key.", e);
        }
        return new OfflineTokenIssuer(key, options, time);
    }

    /// <summary>The JWK Set of the public key, for the app's <c>SERVERLESS_TRUSTED_TOKEN_KEYS</c>.</summary>
    public string PublicJwks() => TrustedTokenKeys.Write(_key, KeyId);

    /// <summary>A signed token for <paramref name="request"/>, with the same claims and limits as the app's own tokens.</summary>
    /// <exception cref="ArgumentException">Empty subject, no roles, or a lifetime beyond the maximum.</exception>
    public string Issue(TokenRequest request)
    {
        var lifetime = JwtAssembly.CheckRequest(request, _options);
        var signingInput = JwtAssembly.SigningInput(_options, request, KeyId, _time.GetUtcNow(), lifetime);
        // ES256 is the IEEE P1363 form r || s (RFC 7518 section 3.4), .NET's default.
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256);
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    public void Dispose() => _key.Dispose();
}
