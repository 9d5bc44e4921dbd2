using System.Security.Claims;
using Serverless.Security.Hosting;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// Authenticates and authorises a queue submission the way the HTTP gate does a request: the bearer
/// token in the message is validated (issuer, audience, lifetime, ES256 by a vault key), then the
/// access policy decides <c>inference.submit</c> on the message's tenant, so a partner can submit only
/// as itself.
/// </summary>
public sealed class SubmissionAuthenticator(SecurityOptions security, VaultSigningKeys keys, AccessPolicy policy)
{
    internal async Task<(ClaimsPrincipal? Principal, string? Code, string? Reason)> AuthorizeAsync(string token, string tenant, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(token)) return (null, RefusalCodes.Unauthenticated, "the message carries no bearer token");
        var (principal, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(security.Tokens, keys));
        if (principal is null) return (null, RefusalCodes.Unauthenticated, "the bearer token is invalid: " + error);
        var decision = await policy.DecideAsync(principal, Permissions.InferenceSubmit, new ResourceRef(ResourceRef.Tenant, tenant), cancellationToken);
        return decision.Allowed ? (principal, null, null) : (principal, RefusalCodes.Forbidden, decision.Reason);
    }

    internal static string Subject(ClaimsPrincipal? principal) => principal?.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
}
