using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Serverless.Security.Identity;

/// <summary>
/// A local certificate authority for development and tests: a self-signed ECDSA P-256 root that
/// issues server certificates (127.0.0.1 / localhost) and client certificates for federation
/// clients. Not for production: production certificates come from the organisation's PKI.
/// </summary>
public sealed class DevCertificateAuthority : IDisposable
{
    /// <summary>id-kp-serverAuth (RFC 5280 §4.2.1.12).</summary>
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>id-kp-clientAuth (RFC 5280 §4.2.1.12).</summary>
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    private readonly TimeProvider _time;

    private DevCertificateAuthority(X509Certificate2 certificate, TimeProvider time)
    {
        Certificate = certificate;
        _time = time;
        Trust = new CertificateTrust(certificate, time);
    }

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Chain validation against this CA as the only trust root.</summary>
    public CertificateTrust Trust { get; }

    /// <summary>Makes a new root (valid for <paramref name="lifetime"/>, default 2 years).</summary>
    public static DevCertificateAuthority Create(string commonName = "Serverless Dev CA", TimeSpan? lifetime = null, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(commonName)}, O=Serverless Development"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = time.GetUtcNow();
        using var created = request.CreateSelfSigned(now.AddMinutes(-5), now + (lifetime ?? TimeSpan.FromDays(730)));
        return new DevCertificateAuthority(Reload(created), time);
    }

    /// <summary>Loads a CA saved with <see cref="Save"/>; refuses a file readable by others.</summary>
    public static DevCertificateAuthority Load(string pfxPath, TimeProvider? time = null)
    {
        LocalKeyring.RequireOwnerOnly(pfxPath);
        var certificate = X509CertificateLoader.LoadPkcs12FromFile(pfxPath, password: null, X509KeyStorageFlags.Exportable);
        if (!certificate.HasPrivateKey) throw new CryptographicException($"'{pfxPath}' has no private key.");
        return new DevCertificateAuthority(certificate, time ?? TimeProvider.System);
    }

    /// <summary>Writes the CA with its key as PKCS#12 (mode 0600) and the public certificate as PEM next to it.</summary>
    public void Save(string pfxPath)
    {
        LocalKeyring.WriteOwnerOnlyAtomically(pfxPath, Certificate.Export(X509ContentType.Pkcs12));
        File.WriteAllText(Path.ChangeExtension(pfxPath, ".pem"), Certificate.ExportCertificatePem() + "\n");
    }

    /// <summary>A TLS server certificate for the given host names and addresses (default localhost and 127.0.0.1).</summary>
    public X509Certificate2 IssueServerCertificate(IEnumerable<string>? dnsNames = null, IEnumerable<IPAddress>? addresses = null, TimeSpan? lifetime = null)
    {
        var names = (dnsNames ?? ["localhost"]).ToList();
        var ips = (addresses ?? [IPAddress.Loopback]).ToList();
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names) san.AddDnsName(name);
        foreach (var ip in ips) san.AddIpAddress(ip);
        var subject = names.Count > 0 ? names[0] : ips[0].ToString();
        return Issue($"CN={Escape(subject)}", ServerAuthOid, san.Build(), lifetime ?? TimeSpan.FromDays(90));
    }

    /// <summary>A TLS client certificate whose subject CN is <paramref name="clientId"/>.</summary>
    public X509Certificate2 IssueClientCertificate(string clientId, TimeSpan? lifetime = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        return Issue($"CN={Escape(clientId)}, O=Serverless Federation Client", ClientAuthOid, san: null, lifetime ?? TimeSpan.FromDays(90));
    }

    private X509Certificate2 Issue(string subject, string usageOid, X509Extension? san, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usageOid)], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (san is not null) request.CertificateExtensions.Add(san);
        var now = _time.GetUtcNow();
        var notAfter = now + lifetime;
        if (notAfter > Certificate.NotAfter) notAfter = Certificate.NotAfter;
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive (RFC 5280 §4.1.2.2)
        using var issued = request.Create(Certificate, now.AddMinutes(-5), notAfter, serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        return Reload(withKey);
    }

    // A PKCS#12 round trip gives a certificate whose key SslStream can use on every platform.
    private static X509Certificate2 Reload(X509Certificate2 certificate) =>
        X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), password: null, X509KeyStorageFlags.Exportable);

    private static string Escape(string value) =>
        value.Contains(',') || value.Contains('=') || value.Contains('"') ? "\"" + value.Replace("\"", "\\\"") + "\"" : value;

    public void Dispose() => Certificate.Dispose();
}

/// <summary>
/// Validates a certificate chain against one trust root only (X509ChainTrustMode.CustomRootTrust):
/// used both for client certificates on the server and for the server certificate in clients, so
/// nothing ever turns validation off.
/// </summary>
public sealed class CertificateTrust(X509Certificate2 root, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public X509Certificate2 Root { get; } = root;

    /// <summary>True when <paramref name="certificate"/> chains to <see cref="Root"/>, is in its validity period and carries <paramref name="requiredUsageOid"/>.</summary>
    public bool IsTrusted(X509Certificate2 certificate, string requiredUsageOid, out string reason)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // dev CA publishes no CRL
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(requiredUsageOid));
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        if (!chain.Build(certificate))
        {
            reason = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).DefaultIfEmpty("chain did not build"));
            return false;
        }
        var anchor = chain.ChainElements[^1].Certificate;
        if (!anchor.RawDataMemory.Span.SequenceEqual(Root.RawDataMemory.Span))
        {
            reason = "the chain does not end at the configured trust root";
            return false;
        }
        reason = "";
        return true;
    }
}
