using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Routing;

namespace Serverless.Security.RateLimiting;

/// <summary>Per-principal and per-endpoint request budgets (fixed windows, no queueing: over budget is 429 at once).</summary>
public sealed record RateLimitOptions
{
    /// <summary>Requests one principal may make across all endpoints per window.</summary>
    public int PermitsPerPrincipal { get; init; } = 600;

    /// <summary>Requests one principal may make to one endpoint per window (endpoints may override with <see cref="EndpointRateLimitAttribute"/>).</summary>
    public int PermitsPerEndpoint { get; init; } = 120;

    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(1);
}

/// <summary>Overrides the per-principal budget of one endpoint (e.g. a costly encrypted-inference call).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class EndpointRateLimitAttribute(int permitsPerWindow) : Attribute
{
    public int PermitsPerWindow { get; } = permitsPerWindow > 0 ? permitsPerWindow : throw new ArgumentOutOfRangeException(nameof(permitsPerWindow));
}

/// <summary>ASP.NET Core rate limiter wiring: two chained partitioned limiters, 429 + Retry-After + ProblemDetails.</summary>
public static class RateLimits
{
    /// <summary>
    /// Registers the limiter. Place <c>app.UseRateLimiter()</c> after <c>UseAuthentication()</c> so
    /// partitions key on the authenticated principal (anonymous callers are keyed by address).
    /// </summary>
    public static IServiceCollection AddServerlessRateLimiting(this IServiceCollection services, RateLimitOptions? options = null)
    {
        var limits = options ?? new RateLimitOptions();
        if (limits.PermitsPerPrincipal <= 0 || limits.PermitsPerEndpoint <= 0 || limits.Window <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), "Permits and window must be positive.");
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                PartitionedRateLimiter.Create<HttpContext, string>(context =>
                    RateLimitPartition.GetFixedWindowLimiter("principal:" + PrincipalKey(context), _ => Window(limits.PermitsPerPrincipal, limits.Window))),
                PartitionedRateLimiter.Create<HttpContext, string>(context =>
                {
                    var endpoint = context.GetEndpoint();
                    var permits = endpoint?.Metadata.GetMetadata<EndpointRateLimitAttribute>()?.PermitsPerWindow ?? limits.PermitsPerEndpoint;
                    return RateLimitPartition.GetFixedWindowLimiter(
                        $"endpoint:{EndpointKey(context)}|{PrincipalKey(context)}|{permits}", _ => Window(permits, limits.Window));
                }));
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.OnRejected = async (context, cancellationToken) =>
            {
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : limits.Window;
                var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
                var response = context.HttpContext.Response;
                response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests",
                    detail: $"Rate limit exceeded; retry after {seconds} s.").ExecuteAsync(context.HttpContext);
            };
        });
        return services;
    }

    private static FixedWindowRateLimiterOptions Window(int permits, TimeSpan window) => new()
    {
        PermitLimit = permits,
        Window = window,
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    internal static string PrincipalKey(HttpContext context) =>
        context.User.Identity?.IsAuthenticated == true && context.User.FindFirst(SecurityClaims.Subject)?.Value is { } subject
            ? "sub:" + subject
            : "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");

    internal static string EndpointKey(HttpContext context) => context.GetEndpoint() switch
    {
        RouteEndpoint route => context.Request.Method + " " + route.RoutePattern.RawText,
        { DisplayName: { } name } => name,
        _ => context.Request.Method + " " + context.Request.Path,
    };
}
