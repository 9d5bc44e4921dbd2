using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

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

/// <summary>Options of the client-certificate scheme: the trust root and the registry.</summary>
public sealed class ClientCertificateAuthenticationOptions : AuthenticationSchemeOptions
{
    public const string Scheme = "ClientCertificate";
    public CertificateTrust? Trust { get; set; }
    public ClientCertificateRegistry? Registry { get; set; }
}

/// <summary>
/// Authenticates the TLS client certificate of the connection: it must chain to the configured
/// root with the clientAuth usage and be registered; the principal carries the registered client
/// id, tenant and roles (amr = "mtls").
/// </summary>
internal sealed class ClientCertificateAuthenticationHandler(
    IOptionsMonitor<ClientCertificateAuthenticationOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<ClientCertificateAuthenticationOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var certificate = await Context.Connection.GetClientCertificateAsync(Context.RequestAborted);
        if (certificate is null) return AuthenticateResult.NoResult();
        var trust = Options.Trust ?? throw new InvalidOperationException("ClientCertificateAuthenticationOptions.Trust is not set.");
        var registry = Options.Registry ?? throw new InvalidOperationException("ClientCertificateAuthenticationOptions.Registry is not set.");
        if (!trust.IsTrusted(certificate, DevCertificateAuthority.ClientAuthOid, out var reason))
            return AuthenticateResult.Fail($"Client certificate is not trusted: {reason}");
        if (!registry.TryResolve(certificate, out var identity))
            return AuthenticateResult.Fail("Client certificate is not registered to any client.");

        var claims = new List<Claim>
        {
            new(SecurityClaims.Subject, identity.ClientId),
            new(SecurityClaims.Tenant, identity.Tenant),
            new(SecurityClaims.AuthenticationMethod, "mtls"),
        };
        foreach (var role in identity.Roles) claims.Add(new Claim(SecurityClaims.Role, role));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, Scheme.Name, SecurityClaims.Subject, SecurityClaims.Role));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, Scheme.Name));
    }
}
