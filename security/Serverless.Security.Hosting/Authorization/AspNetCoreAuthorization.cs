using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Serverless.Security.Authorization;

/// <summary>The requirement behind policy "permission:&lt;name&gt;".</summary>
public sealed record PermissionRequirement(string Permission) : IAuthorizationRequirement;

/// <summary>Builds a policy for any "permission:..." name on demand; other names go to the default provider.</summary>
internal sealed class PermissionPolicyProvider(IOptions<AuthorizationOptions> options) : IAuthorizationPolicyProvider
{
    private readonly DefaultAuthorizationPolicyProvider _fallback = new(options);

    public Task<AuthorizationPolicy?> GetPolicyAsync(string policyName)
    {
        if (policyName.StartsWith(RequirePermissionAttribute.PolicyPrefix, StringComparison.Ordinal))
        {
            var permission = policyName[RequirePermissionAttribute.PolicyPrefix.Length..];
            return Task.FromResult<AuthorizationPolicy?>(new AuthorizationPolicyBuilder().AddRequirements(new PermissionRequirement(permission)).Build());
        }
        return _fallback.GetPolicyAsync(policyName);
    }

    public Task<AuthorizationPolicy> GetDefaultPolicyAsync() => _fallback.GetDefaultPolicyAsync();
    public Task<AuthorizationPolicy?> GetFallbackPolicyAsync() => _fallback.GetFallbackPolicyAsync();
}

/// <summary>Endpoints that declare no permission are refused (deny by default); mark public ones [AllowAnonymous].</summary>
public sealed record DenyUndeclaredRequirement : IAuthorizationRequirement;

/// <summary>Evaluates <see cref="PermissionRequirement"/> with <see cref="AccessPolicy"/>, scoping by the endpoint's declared resource parameter; audits denials.</summary>
internal sealed class PermissionAuthorizationHandler(AccessPolicy policy, IServiceProvider services) : IAuthorizationHandler
{
    public async Task HandleAsync(AuthorizationHandlerContext context)
    {
        var http = context.Resource as HttpContext;
        foreach (var requirement in context.PendingRequirements.ToList())
        {
            if (requirement is DenyUndeclaredRequirement)
            {
                context.Fail(new AuthorizationFailureReason(this, "the endpoint declares no permission (deny by default)"));
                continue;
            }
            if (requirement is not PermissionRequirement permission) continue;
            var attribute = http?.GetEndpoint()?.Metadata.GetOrderedMetadata<RequirePermissionAttribute>()
                .FirstOrDefault(a => a.Permission == permission.Permission);
            var resource = http is null ? null : attribute?.ResolveResource(name =>
                http.GetRouteValue(name)?.ToString() ?? (http.Request.Query.TryGetValue(name, out var q) ? q.ToString() : null));
            var decision = await policy.DecideAsync(context.User, permission.Permission, resource, http?.RequestAborted ?? default);
            if (decision.Allowed)
            {
                context.Succeed(requirement);
                continue;
            }
            context.Fail(new AuthorizationFailureReason(this, decision.Reason));
            if (decision.StatusCode == 403 && services.GetService<IAuditLog>() is { } audit)
            {
                await audit.AppendAsync(new AuditEvent(
                    Actor(context.User), AuditActions.AccessDenied, resource?.ToString() ?? permission.Permission, AuditOutcome.Denied,
                    http?.TraceIdentifier, decision.Reason));
            }
        }
    }

    internal static string Actor(ClaimsPrincipal user) => user.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
}

/// <summary>Writes 401 / 403 as ProblemDetails (RFC 9457) with the reason, after the scheme's own challenge / forbid.</summary>
internal sealed class ProblemDetailsAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult result)
    {
        if (result.Succeeded)
        {
            await next(context);
            return;
        }
        var reasons = result.AuthorizationFailure?.FailureReasons.Select(r => r.Message).ToList() ?? [];
        if (result.Challenged)
        {
            await context.ChallengeAsync();
            await WriteAsync(context, StatusCodes.Status401Unauthorized, "Authentication required",
                "Present a valid bearer token or a registered client certificate.");
        }
        else if (result.Forbidden)
        {
            await context.ForbidAsync();
            await WriteAsync(context, StatusCodes.Status403Forbidden, "Forbidden",
                reasons.Count > 0 ? string.Join("; ", reasons) : "The caller's roles do not allow this action.");
        }
        else
        {
            await _default.HandleAsync(next, context, policy, result);
        }
    }

    private static Task WriteAsync(HttpContext context, int status, string title, string detail)
    {
        if (context.Response.HasStarted) return Task.CompletedTask;
        context.Response.StatusCode = status;
        return Results.Problem(statusCode: status, title: title, detail: detail).ExecuteAsync(context);
    }
}
