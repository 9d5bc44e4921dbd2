using System.Security.Claims;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Authentication.Certificate;

namespace Serverless.Security.Identity;

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
