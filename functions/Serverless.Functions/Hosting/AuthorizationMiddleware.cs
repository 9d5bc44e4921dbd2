using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Azure.Functions.Worker.Middleware;
using Serverless.Security;
using Serverless.Security.Hosting;
using Serverless.Security.RateLimiting;

namespace Serverless.Functions.Hosting;

/// <summary>
/// The app's security gate, worker middleware run before every HTTP function binds its arguments:
/// the caller is authenticated (bearer token), authorized against the permission the function
/// declares with [RequirePermission] (deny by default: a function that declares none is refused unless
/// it is [AllowAnonymous]), scoped to the caller's tenant, held to the function's body limit and rate
/// limited per principal and per function. Refusals are ProblemDetails (401 / 403 / 413 / 429) written
/// to the response, and are audited. Queue, timer and durable triggers are the platform acting on its
/// own and pass.
/// </summary>
internal sealed class AuthorizationMiddleware(AccessPolicy policy, FunctionRateLimiter limiter, IAuditLog audit, IHttpContextAccessor accessor)
    : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        if (context.GetHttpContext() is not { } http || FunctionMethods.Of(context.FunctionDefinition) is not { } method)
        {
            await next(context);
            return;
        }
        // The function runs on the worker-protocol invocation, not on the request's own flow: the audited key
        // vault reads the caller from the accessor, so it is pointed at this request here.
        accessor.HttpContext = http;

        if (http.User.Identity?.IsAuthenticated != true)
        {
            var authentication = await http.AuthenticateAsync();
            if (authentication.Succeeded) http.User = authentication.Principal;
        }

        var name = context.FunctionDefinition.Name;
        if (!method.IsDefined(typeof(AllowAnonymousAttribute), inherit: true))
        {
            var declared = (RequirePermissionAttribute?)Attribute.GetCustomAttribute(method, typeof(RequirePermissionAttribute));
            AccessDecision decision;
            ResourceRef? resource = null;
            if (declared is null)
            {
                decision = http.User.Identity?.IsAuthenticated == true
                    ? AccessDecision.Forbidden($"function '{name}' declares no permission (deny by default)")
                    : AccessDecision.Unauthenticated();
            }
            else
            {
                resource = declared.ResolveResource(key => context.BindingContext.BindingData.TryGetValue(key, out var value) ? Convert.ToString(value, CultureInfo.InvariantCulture) : null);
                decision = await policy.DecideAsync(http.User, declared.Permission, resource, context.CancellationToken);
            }
            if (!decision.Allowed)
            {
                if (decision.StatusCode == 403 || !http.Items.ContainsKey(SecurityServiceCollectionExtensions.AuthenticationFailureAuditedKey))
                {
                    var actor = http.User.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
                    var action = decision.StatusCode == 401 ? AuditActions.AuthenticationFailed : AuditActions.AccessDenied;
                    await audit.AppendAsync(new AuditEvent(actor, action, resource?.ToString() ?? name,
                        action == AuditActions.AccessDenied ? AuditOutcome.Denied : AuditOutcome.Failure, context.InvocationId, decision.Reason));
                }
                if (decision.StatusCode == 401) http.Response.Headers.WWWAuthenticate = "Bearer";
                await Results.Problem(statusCode: decision.StatusCode, title: decision.StatusCode == 401 ? "Authentication required" : "Forbidden",
                    detail: decision.Reason).ExecuteAsync(http);
                return;
            }
        }

        if (Attribute.GetCustomAttribute(method, typeof(RequestBodyLimitAttribute)) is RequestBodyLimitAttribute bodyLimit)
        {
            if (http.Request.ContentLength > bodyLimit.MaxBytes)
            {
                await Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Body too large",
                    detail: $"The body is {http.Request.ContentLength} bytes; '{name}' accepts at most {bodyLimit.MaxBytes}.").ExecuteAsync(http);
                return;
            }
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = bodyLimit.MaxBytes;
        }

        var permits = ((EndpointRateLimitAttribute?)Attribute.GetCustomAttribute(method, typeof(EndpointRateLimitAttribute)))?.PermitsPerWindow;
        using var lease = limiter.Acquire(http, name, permits);
        if (!lease.IsAcquired)
        {
            var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : limiter.Options.Window;
            var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
            http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            await Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests",
                detail: $"Rate limit exceeded for '{name}'; retry after {seconds} s.").ExecuteAsync(http);
            return;
        }
        await next(context);
    }
}
