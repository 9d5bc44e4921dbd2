using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;

namespace Serverless.Host.AspNetSampleApp;

/// <summary>
/// HTTP-trigger cases for the local host's ASP.NET Core integration tests, written the way the product's
/// function app is (HttpRequest in, IResult out). Each function reflects what it was given so a test can
/// assert that the host forwarded it.
/// </summary>
public sealed class HttpFunctions
{
    private static readonly ConcurrentDictionary<string, string> SlowStates = new(StringComparer.Ordinal);

    /// <summary>Route parameters (one constrained to int), query, a header, the body, and the URL the function sees.</summary>
    [Function("Echo")]
    public static async Task<IResult> Echo(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "post", Route = "items/{category}/{id:int}")] HttpRequest request,
        string category,
        int id)
    {
        string body = await new StreamReader(request.Body).ReadToEndAsync(request.HttpContext.RequestAborted);
        request.HttpContext.Response.Headers["x-sample-echo"] = category;
        return Results.Json(new EchoReply(
            request.Method,
            category,
            id,
            request.Query.TryGetValue("q", out var q) ? q.ToString() : null,
            request.Headers.TryGetValue("x-sample", out var header) ? header.ToString() : null,
            body,
            $"{request.Scheme}://{request.Host}{request.Path}{request.QueryString}",
            request.Headers.TryGetValue("X-ARR-ClientCert", out var certificate) ? certificate.ToString() : null));
    }

    /// <summary>The status code comes from the route.</summary>
    [Function("Status")]
    public static IResult Status(
        [HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "status/{code:int}")] HttpRequest request,
        int code) =>
        Results.StatusCode(code);

    /// <summary>Needs a function key (query <c>code</c> or header <c>x-functions-key</c>).</summary>
    [Function("Secret")]
    public static IResult Secret(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "secret")] HttpRequest request) =>
        Results.Text("secret ok");

    /// <summary>Needs the master key.</summary>
    [Function("AdminOnly")]
    public static IResult AdminOnly(
        [HttpTrigger(AuthorizationLevel.Admin, "get", Route = "admin-only")] HttpRequest request) =>
        Results.Text("admin ok");

    /// <summary>An exception in the function: the host answers 500 with nothing of the exception.</summary>
    [Function("Throws")]
    public static IResult Throws(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "throws")] HttpRequest request) =>
        throw new InvalidOperationException("sample failure");

    /// <summary>The older HttpRequestData/HttpResponseData style still works under the integration.</summary>
    [Function("Classic")]
    public static async Task<HttpResponseData> Classic(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "classic/{name}")] HttpRequestData request,
        string name)
    {
        HttpResponseData response = request.CreateResponse(HttpStatusCode.Accepted);
        await response.WriteStringAsync($"classic {name}");
        return response;
    }

    /// <summary>Reads a large body as a stream (never whole in memory) and answers its length and SHA-256.</summary>
    [Function("Upload")]
    public static async Task<IResult> Upload(
        [HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "upload")] HttpRequest request)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[64 * 1024];
        long length = 0;
        int read;
        while ((read = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            length += read;
        }
        return Results.Json(new UploadReply(length, Convert.ToHexStringLower(hash.GetHashAndReset())));
    }

    /// <summary>Writes <c>size</c> bytes of a fixed pattern straight to the response, in chunks.</summary>
    [Function("Download")]
    public static async Task<IResult> Download(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "download/{size:int}")] HttpRequest request,
        int size)
    {
        HttpResponse response = request.HttpContext.Response;
        response.ContentType = "application/octet-stream";
        byte[] chunk = new byte[64 * 1024];
        for (int offset = 0; offset < size; offset += chunk.Length)
        {
            int count = Math.Min(chunk.Length, size - offset);
            for (int i = 0; i < count; i++)
            {
                chunk[i] = Pattern(offset + i);
            }
            await response.Body.WriteAsync(chunk.AsMemory(0, count), request.HttpContext.RequestAborted);
        }
        return Results.Empty;
    }

    /// <summary>The byte at <paramref name="position"/> of a Download body (tests check it).</summary>
    public static byte Pattern(long position) => (byte)((position * 31 + 7) % 251);

    /// <summary>Waits until the caller goes away, and records that it saw the cancellation.</summary>
    [Function("Slow")]
    public static async Task<IResult> Slow(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "slow/{id}")] HttpRequest request,
        string id,
        FunctionContext context)
    {
        SlowStates[id] = "started";
        using var either = CancellationTokenSource.CreateLinkedTokenSource(request.HttpContext.RequestAborted, context.CancellationToken);
        try
        {
            await Task.Delay(TimeSpan.FromMinutes(2), either.Token);
            SlowStates[id] = "finished";
            return Results.Text("finished");
        }
        catch (OperationCanceledException)
        {
            SlowStates[id] = "cancelled";
            throw;
        }
    }

    /// <summary>What a Slow invocation has seen so far: started, cancelled, finished, or unknown.</summary>
    [Function("SlowState")]
    public static IResult SlowState(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "slow-state/{id}")] HttpRequest request,
        string id) =>
        Results.Text(SlowStates.TryGetValue(id, out string? state) ? state : "unknown");

    public sealed record EchoReply(string Method, string Category, int Id, string? Query, string? Header, string Body, string Url, string? ClientCertificate);

    public sealed record UploadReply(long Length, string Sha256);
}
