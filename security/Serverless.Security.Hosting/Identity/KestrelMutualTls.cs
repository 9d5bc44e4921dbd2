using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Serverless.Security.Identity;

/// <summary>Kestrel's side of <see cref="MutualTls"/>: the server certificate, the protocols, and client certificates checked against the trust root.</summary>
public static class KestrelMutualTls
{
    /// <summary>
    /// Configures a Kestrel HTTPS endpoint: server certificate, TLS 1.2/1.3, and client certificates
    /// (<paramref name="mode"/>: RequireCertificate on a dedicated federation port, AllowCertificate
    /// where bearer tokens are also accepted) validated against <paramref name="clientTrust"/>.
    /// </summary>
    public static void Configure(HttpsConnectionAdapterOptions options, X509Certificate2 serverCertificate, CertificateTrust clientTrust,
        ClientCertificateMode mode = ClientCertificateMode.RequireCertificate)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(serverCertificate);
        ArgumentNullException.ThrowIfNull(clientTrust);
        options.ServerCertificate = serverCertificate;
        options.SslProtocols = MutualTls.Protocols;
        options.ClientCertificateMode = mode;
        options.CheckCertificateRevocation = false;
        options.ClientCertificateValidation = (certificate, _, _) =>
            clientTrust.IsTrusted(certificate, DevCertificateAuthority.ClientAuthOid, out _);
    }

}
