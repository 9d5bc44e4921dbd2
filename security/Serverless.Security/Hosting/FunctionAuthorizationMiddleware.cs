using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Serverless.Runtime.Functions;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;
using Serverless.Security.Identity;
using Serverless.Security.RateLimiting;

namespace Serverless.Security.Hosting;

/// <summary>
/// The host's security gate, run around every invocation before arguments are bound:
/// HTTP functions are authenticated (bearer token or client certificate), authorized against the
/// permission they declare with <see cref="RequirePermissionAttribute"/> (deny by default: a function
/// that declares none is refused unless it is [AllowAnonymous]), scoped to the caller's tenant, and
/// rate limited per principal and per function. Refusals are ProblemDetails (401 / 403 / 429) and
/// are audited. Timer, queue and durable triggers are the platform acting on its own and pass.
/// </summary>
internal sealed class FunctionAuthorizationMiddleware(AccessPolicy policy, FunctionRateLimiter limiter, IServiceProvider services) : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        if (context.Definition.TriggerKind != "http" || context.HttpContext is not { } http)
        {
            await next(context);
            return;
        }

        if (http.User.Identity?.IsAuthenticated != true)
        {
            var authentication = await http.AuthenticateAsync();
            if (authentication.Succeeded) http.User = authentication.Principal;
        }

        var anonymous = context.Definition.Attributes.OfType<IAllowAnonymous>().Any();
        if (!anonymous)
        {
            var declared = context.Definition.GetAttribute<RequirePermissionAttribute>();
            AccessDecision decision;
            ResourceRef? resource = null;
            if (declared is null)
            {
                decision = http.User.Identity?.IsAuthenticated == true
                    ? AccessDecision.Forbidden($"function '{context.FunctionName}' declares no permission (deny by default)")
                    : AccessDecision.Unauthenticated();
            }
            else
            {
                resource = declared.ResolveResource(name => context.BindingData.TryGetValue(name, out var value) ? Convert.ToString(value, CultureInfo.InvariantCulture) : null);
                decision = await policy.DecideAsync(http.User, declared.Permission, resource, context.CancellationToken);
            }
            if (!decision.Allowed)
            {
                if (decision.StatusCode == 403 || !http.Items.ContainsKey(SecurityServiceCollectionExtensions.AuthenticationFailureAuditedKey))
                    await AuditAsync(http, decision.StatusCode == 401 ? AuditActions.AuthenticationFailed : AuditActions.AccessDenied,
                        resource?.ToString() ?? context.FunctionName, decision.Reason);
                if (decision.StatusCode == 401) http.Response.Headers.WWWAuthenticate = "Bearer";
                context.Result = Results.Problem(statusCode: decision.StatusCode,
                    title: decision.StatusCode == 401 ? "Authentication required" : "Forbidden", detail: decision.Reason);
                return;
            }
        }

        // Per-function body limit, applied before the host binds (and reads) the body.
        if (context.Definition.GetAttribute<RequestBodyLimitAttribute>() is { } bodyLimit)
        {
            if (http.Request.ContentLength > bodyLimit.MaxBytes)
            {
                context.Result = Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Body too large",
                    detail: $"The body is {http.Request.ContentLength} bytes; '{context.FunctionName}' accepts at most {bodyLimit.MaxBytes}.");
                return;
            }
            if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
                size.MaxRequestBodySize = bodyLimit.MaxBytes;
        }

        using var lease = limiter.Acquire(http, context.Definition.Name, context.Definition.GetAttribute<EndpointRateLimitAttribute>()?.PermitsPerWindow);
        if (!lease.IsAcquired)
        {
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : limiter.Options.Window;
            var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
            http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            context.Result = Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests",
                detail: $"Rate limit exceeded for '{context.FunctionName}'; retry after {seconds} s.");
            return;
        }
        await next(context);
    }

    private async Task AuditAsync(HttpContext http, string action, string resource, string detail)
    {
        if (services.GetService(typeof(IAuditLog)) is IAuditLog audit)
        {
            var actor = http.User.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
            await audit.AppendAsync(new AuditEvent(actor, action, resource, action == AuditActions.AccessDenied ? AuditOutcome.Denied : AuditOutcome.Failure,
                http.TraceIdentifier, detail));
        }
    }
}

/// <summary>The largest request body a function accepts (413 ProblemDetails above it; Kestrel's global limit still applies).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class RequestBodyLimitAttribute(long maxBytes) : Attribute
{
    public long MaxBytes { get; } = maxBytes > 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes));
}
