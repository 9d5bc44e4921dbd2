using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Serverless.Security.Identity;

/// <summary>
/// TLS settings for HTTP clients (Kestrel's side is KestrelMutualTls, in the hosting library): TLS 1.3 where both ends support it (1.2 as the
/// floor), client certificates validated against a configured trust root, never "accept anything".
/// </summary>
public static class MutualTls
{
    /// <summary>TLS 1.3 first; TLS 1.2 for peers without it (RFC 8446; RFC 5246). Older versions are off.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls13 | SslProtocols.Tls12;

    /// <summary>
    /// An HTTP handler that trusts servers chaining to <paramref name="serverTrust"/> (with a
    /// matching host name) and presents <paramref name="clientCertificate"/> when given.
    /// </summary>
    public static SocketsHttpHandler CreateClientHandler(CertificateTrust serverTrust, X509Certificate2? clientCertificate = null)
    {
        ArgumentNullException.ThrowIfNull(serverTrust);
        var ssl = new SslClientAuthenticationOptions
        {
            EnabledSslProtocols = Protocols,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = (_, certificate, _, errors) => ValidateServer(serverTrust, certificate, errors),
        };
        if (clientCertificate is not null) ssl.ClientCertificates = new X509CertificateCollection { clientCertificate };
        return new SocketsHttpHandler { SslOptions = ssl, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
    }

    /// <summary>Server validation: the name must match, and the chain must end at the trust root (any "untrusted root" from the system store is replaced by this check).</summary>
    internal static bool ValidateServer(CertificateTrust trust, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null) return false;
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0) return false;
        if (certificate is X509Certificate2 leaf) return trust.IsTrusted(leaf, DevCertificateAuthority.ServerAuthOid, out _);
        using var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return trust.IsTrusted(copy, DevCertificateAuthority.ServerAuthOid, out _);
    }
}
