using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography.X509Certificates;

namespace Serverless.Security.Identity;

/// <summary>Who a client certificate stands for.</summary>
public sealed record ClientIdentity(string ClientId, string Tenant, IReadOnlyList<string> Roles);

/// <summary>
/// Maps client certificates to identities by SHA-256 thumbprint: a certificate that chains to the
/// trust root but was never registered authenticates nobody.
/// </summary>
public sealed class ClientCertificateRegistry
{
    private readonly ConcurrentDictionary<string, ClientIdentity> _byThumbprint = new(StringComparer.Ordinal);

    public void Register(X509Certificate2 certificate, ClientIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentException.ThrowIfNullOrEmpty(identity.ClientId);
        ArgumentException.ThrowIfNullOrEmpty(identity.Tenant);
        _byThumbprint[Thumbprint(certificate)] = identity;
    }

    public bool Revoke(X509Certificate2 certificate) => _byThumbprint.TryRemove(Thumbprint(certificate), out _);

    public bool TryResolve(X509Certificate2 certificate, out ClientIdentity identity) =>
        _byThumbprint.TryGetValue(Thumbprint(certificate), out identity!);

    public static string Thumbprint(X509Certificate2 certificate) =>
        Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));
}
