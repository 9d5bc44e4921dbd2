using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Authentication.Certificate;

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

/// <summary>
/// The client-certificate scheme, on ASP.NET Core's certificate authentication handler: the
/// certificate must chain to the federation's CA (a custom root, not the system store), carry the
/// clientAuth extended key usage (RFC 5280 section 4.2.1.12) and be within its validity period.
/// Revocation is the product's own (a removed client's thumbprint), not CRL or OCSP, which the dev
/// CA does not publish.
/// </summary>
public static class ClientCertificateAuthentication
{
    public const string Scheme = CertificateAuthenticationDefaults.AuthenticationScheme;

    /// <summary>The chain and usage checks every use of the scheme shares.</summary>
    public static void Configure(CertificateAuthenticationOptions options, X509Certificate2 root)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(root);
        options.AllowedCertificateTypes = CertificateTypes.Chained;
        options.ChainTrustValidationMode = X509ChainTrustMode.CustomRootTrust;
        options.CustomTrustStore = [root];
        options.RevocationMode = X509RevocationMode.NoCheck;
        options.ValidateCertificateUse = true;
        options.ValidateValidityPeriod = true;
    }

    /// <summary>
    /// Replaces the handler's principal (the certificate's own fields) with the registered client's:
    /// its id, tenant and roles (amr = "mtls"). A trusted but unregistered certificate authenticates nobody.
    /// </summary>
    public static Task ResolveRegisteredClient(CertificateValidatedContext context, ClientCertificateRegistry registry)
    {
        if (!registry.TryResolve(context.ClientCertificate, out var identity))
        {
            context.Fail("Client certificate is not registered to any client.");
            return Task.CompletedTask;
        }
        var claims = new List<Claim>
        {
            new(SecurityClaims.Subject, identity.ClientId),
            new(SecurityClaims.Tenant, identity.Tenant),
            new(SecurityClaims.AuthenticationMethod, "mtls"),
        };
        foreach (var role in identity.Roles) claims.Add(new Claim(SecurityClaims.Role, role));
        context.Principal = new ClaimsPrincipal(new ClaimsIdentity(claims, context.Scheme.Name, SecurityClaims.Subject, SecurityClaims.Role));
        context.Success();
        return Task.CompletedTask;
    }
}
