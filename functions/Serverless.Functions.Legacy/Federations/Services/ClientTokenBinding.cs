using System.Security.Claims;
using Serverless.Federation.Rounds;
using Serverless.Security.Identity;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// A federation client's token is good for one federation and one certificate: the <c>fed</c> claim
/// must name the federation in the route, and the <c>x5t#S256</c> claim must be the thumbprint the
/// client is enrolled with now. So a token issued by one federation does not open another where the
/// same client id is enrolled, a token outlives neither the client's removal nor a re-enrollment with
/// a new certificate, and a revoked certificate's token is dead at once (the permission check alone
/// knows only the tenant).
/// </summary>
internal static class ClientTokenBinding
{
    /// <summary>Null when the caller may act as a client of <paramref name="state"/>; else why not. Callers without the client role are not bound (operators, auditors).</summary>
    public static string? Check(ClaimsPrincipal user, FederationState state)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(state);
        if (!user.FindAll(SecurityClaims.Role).Any(r => r.Value == EnrollmentService.ClientRole)) return null;
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
