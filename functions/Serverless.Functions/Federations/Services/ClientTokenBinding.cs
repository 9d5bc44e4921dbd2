using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Serverless.Federation.Rounds;

namespace Serverless.Functions.Federations.Services;

/// <summary>Why a federation client's call is refused: the HTTP status, a title and a one-line reason.</summary>
internal sealed record ClientRefusal(int Status, string Title, string Detail);

/// <summary>
/// A federation client's token is good for one federation and one certificate: the <c>fed</c> claim
/// must name the federation in the route, and the <c>x5t#S256</c> claim must be the thumbprint the
/// client is enrolled with now. So a token issued by one federation does not open another where the
/// same client id is enrolled, a token outlives neither the client's removal nor a re-enrollment with
/// a new certificate, and a revoked certificate's token is dead at once (the permission check alone
/// knows only the tenant). With <see cref="FederationOptions.RequireClientCertificate"/>, the client
/// must also present that certificate over mutual TLS: a stolen token alone opens nothing.
/// </summary>
internal static class ClientTokenBinding
{
    /// <summary>Whether the caller acts as a federation client (an enrolled client's token), and so is bound.</summary>
    public static bool IsClient(ClaimsPrincipal user) => user.FindAll(SecurityClaims.Role).Any(r => r.Value == EnrollmentService.ClientRole);

    /// <summary>Null when the caller may act as a client of <paramref name="state"/>; else why not. Callers without the client role are not bound (operators, auditors).</summary>
    public static async Task<ClientRefusal?> CheckAsync(HttpContext http, FederationState state, FederationOptions options, FederationCertificateAuthority ca)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(state);
        var user = http.User;
        if (!IsClient(user)) return null;
        if (Check(user, state) is { } why) return new ClientRefusal(StatusCodes.Status403Forbidden, "Token not bound to this client", why);
        if (!options.RequireClientCertificate) return null;

        // Revocation is the roster: a removed client's certificate is no longer the enrolled one, so it fails the thumbprint check below
        // on its next request, whatever its validity period says.
        if (ca.TryGetTrust() is null) return new ClientRefusal(StatusCodes.Status503ServiceUnavailable, "No certificate authority", ca.MissingReason);
        var presented = await http.AuthenticateAsync(ClientCertificateAuthentication.Scheme);
        if (presented.None)
            return new ClientRefusal(StatusCodes.Status401Unauthorized, "Client certificate required",
                $"Federation '{state.Config.Id}' takes round calls only over mutual TLS: present the client certificate you enrolled with.");
        if (!presented.Succeeded)
            return new ClientRefusal(StatusCodes.Status403Forbidden, "Client certificate refused",
                $"The client certificate is not one of the federation's CA: {presented.Failure?.Message}");
        var thumbprint = ClientCertificateRegistry.Thumbprint(http.Connection.ClientCertificate!);
        var token = user.FindFirst(SecurityClaims.CertificateThumbprint)?.Value;
        if (!string.Equals(thumbprint, token, StringComparison.Ordinal))
            return new ClientRefusal(StatusCodes.Status403Forbidden, "Client certificate refused",
                $"The client certificate is not the one client '{user.FindFirst(SecurityClaims.Subject)?.Value}' is enrolled with.");
        return null;
    }

    /// <summary>The token's binding alone: federation, roster and certificate thumbprint.</summary>
    private static string? Check(ClaimsPrincipal user, FederationState state)
    {
        var subject = user.FindFirst(SecurityClaims.Subject)?.Value;
        var federation = state.Config.Id;
        if (user.FindFirst(SecurityClaims.Federation)?.Value != federation)
            return $"The token was not issued for federation '{federation}'; enroll in it to get one.";
        var enrolled = state.Clients.FirstOrDefault(c => c.ClientId == subject);
        if (enrolled is null)
            return $"Client '{subject}' is not enrolled in federation '{federation}' (removed, or never enrolled).";
        if (user.FindFirst(SecurityClaims.CertificateThumbprint)?.Value != enrolled.CertificateThumbprint)
            return $"The token is bound to another certificate than the one client '{subject}' is enrolled with; enroll again.";
        return null;
    }
}
