using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;

namespace Serverless.Host.Http;

/// <summary>
/// Errors the host itself answers (no function ran, or none could), as RFC 9457 ProblemDetails: no route
/// (404), a method the route does not take (405), a body over the limit (413), the worker gone (503).
/// A function's own responses, whatever their status, pass unchanged; a 401 stays empty, as the Functions
/// host sends it; a failed function stays a bare 500 (nothing of the failure reaches the caller).
/// </summary>
internal static class HostProblems
{
    /// <summary>The Functions host's default request body limit (100 MiB), and the app setting that changes it.</summary>
    public const long DefaultMaxRequestBodySize = 100L * 1024 * 1024;
    public const string MaxRequestBodySizeSetting = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT";

    /// <summary>The limit: the option when set, else FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (bytes), else 100 MiB.</summary>
    public static long MaxRequestBodySize(long? option)
    {
        if (option is { } set)
        {
            return set > 0 ? set : throw new HostStartException("the request body limit must be positive");
        }
        string? setting = Environment.GetEnvironmentVariable(MaxRequestBodySizeSetting);
        if (string.IsNullOrEmpty(setting))
        {
            return DefaultMaxRequestBodySize;
        }
        return long.TryParse(setting, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long bytes) && bytes > 0
            ? bytes
            : throw new HostStartException($"{MaxRequestBodySizeSetting} must be a positive number of bytes");
    }

    /// <summary>
    /// Runs after routing, before the endpoint: no endpoint is a 404; routing's own 405 endpoint (it sets
    /// Allow) gets a ProblemDetails body.
    /// </summary>
    public static void Use(WebApplication app) => app.Use(async (context, next) =>
    {
        Endpoint? endpoint = context.GetEndpoint();
        if (endpoint is null)
        {
            await WriteAsync(context, StatusCodes.Status404NotFound, "Not Found", "No function is served at this path.");
            return;
        }
        await next(context);
        if (context.Response.StatusCode == StatusCodes.Status405MethodNotAllowed && !context.Response.HasStarted
            && endpoint.Metadata.GetMetadata<FunctionEndpoint>() is null)
        {
            await WriteAsync(context, StatusCodes.Status405MethodNotAllowed, "Method Not Allowed", "The function at this path does not take this method.");
        }
    });

    public static Task TooLargeAsync(HttpContext context, long limit) =>
        WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "Payload Too Large", $"The request body is over the host's limit of {limit} bytes.");

    /// <summary>The worker exited mid-invocation or is restarting (Worker/WorkerSupervisor.cs): the caller may retry.</summary>
    public static Task WorkerUnavailableAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "5";
        return WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "Service Unavailable", "The function app's worker is not running; retry the request.");
    }

    /// <summary>True when reading the body failed because it passed the limit (Kestrel's BadHttpRequestException 413).</summary>
    public static bool IsTooLarge(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The body limit this request runs under (Kestrel's, as the host set it).</summary>
    public static long? Limit(HttpContext context) => context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;

    private static Task WriteAsync(HttpContext context, int status, string title, string detail)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }
        return Results.Problem(detail: detail, statusCode: status, title: title, instance: context.Request.Path.Value).ExecuteAsync(context);
    }
}

/// <summary>Marks an endpoint as a function's (so the host can tell its own 405 from a function's).</summary>
internal sealed record FunctionEndpoint(string Name);
