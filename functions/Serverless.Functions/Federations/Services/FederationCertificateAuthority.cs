using System.Security.Cryptography.X509Certificates;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// The CA whose client certificates federation clients hold: read once from
/// <see cref="FederationOptions.CaCertificatePath"/> (default <c>&lt;data&gt;/dev-ca/ca.pem</c>). Enrollment
/// checks the enrolling certificate against it, and the certificate handler checks the one presented
/// over mutual TLS.
/// </summary>
public sealed class FederationCertificateAuthority(FederationOptions options, DataDirectory data, TimeProvider time)
{
    private CertificateTrust? _trust;

    public string Path => options.CaCertificatePath ?? System.IO.Path.Combine(data.Path, "dev-ca", "ca.pem");

    /// <summary>The CA, or null while its file does not exist (the host was started before <c>ca create</c>).</summary>
    public CertificateTrust? TryGetTrust()
    {
        if (_trust is not null) return _trust;
        if (!File.Exists(Path)) return null;
        return _trust = new CertificateTrust(X509CertificateLoader.LoadCertificateFromFile(Path), time);
    }

    /// <summary>Why there is no CA, for a 503 (the path and the command that makes one; no secret).</summary>
    public string MissingReason =>
        $"The host has no client CA at '{Path}' (create one with: serverless-client ca create --out {System.IO.Path.GetDirectoryName(Path)}).";
}
