using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Serverless.Durable.Core;
using Serverless.Runtime.Storage;

namespace Serverless.Durable;

/// <summary>
/// Signs the management URLs handed out in 202 responses: HMAC-SHA256 over the instance id with a
/// 256-bit key kept in <c>&lt;data&gt;/durable/webhooks.key</c> (mode 0600). Whoever holds an
/// instance's URLs may query and control that instance, and no other (capability URLs, as Durable
/// Functions' <c>code=</c> system key, but scoped to one instance).
/// </summary>
internal sealed class DurableWebhookSigner
{
    private readonly byte[] _key;

    public DurableWebhookSigner(DataDirectory dataDirectory)
    {
        var path = Path.Combine(dataDirectory.Path, "durable", "webhooks.key");
        _key = LoadOrCreateKey(path);
    }

    internal DurableWebhookSigner(byte[] key) => _key = key;

    private static byte[] LoadOrCreateKey(string path)
    {
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            if (existing.Length != 32) throw new InvalidDataException($"{path} must hold exactly 32 bytes.");
            return existing;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var key = RandomNumberGenerator.GetBytes(32);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, fileOptions)) { stream.Write(key); stream.Flush(flushToDisk: true); }
        try
        {
            File.Move(temp, path, overwrite: false);
            return key;
        }
        catch (IOException)
        {
            File.Delete(temp); // another process created it first: use theirs
            return File.ReadAllBytes(path);
        }
    }

    public string Sign(string instanceId) =>
        Base64UrlTextEncoder.Encode(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes("durable-instance:" + instanceId)));

    public bool Verify(string instanceId, string? signature)
    {
        if (string.IsNullOrEmpty(signature)) return false;
        byte[] given;
        try { given = Base64UrlTextEncoder.Decode(signature); }
        catch (FormatException) { return false; }
        var expected = HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes("durable-instance:" + instanceId));
        return given.Length == expected.Length && CryptographicOperations.FixedTimeEquals(given, expected);
    }
}

/// <summary>The management URLs of one instance, as Durable Functions' <c>CreateCheckStatusResponse</c> returns them.</summary>
public sealed record DurableHttpManagementPayload(
    string Id,
    string StatusQueryGetUri,
    string SendEventPostUri,
    string TerminatePostUri,
    string SuspendPostUri,
    string ResumePostUri,
    string PurgeHistoryDeleteUri);

/// <summary>Durable Functions' async HTTP API: 202 + status URLs, and the endpoints behind them.</summary>
public static class DurableHttp
{
    /// <summary>The path prefix of the management endpoints.</summary>
    public const string WebhookPrefix = "/runtime/webhooks/durabletask";

    /// <summary>The signed management URLs of <paramref name="instanceId"/>, rooted at the request's scheme, host and path base.</summary>
    public static DurableHttpManagementPayload CreateHttpManagementPayload(this DurableTaskClient client, HttpRequest request, string instanceId)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(instanceId);
        var signer = request.HttpContext.RequestServices.GetRequiredService<DurableWebhookSigner>();
        var sig = Uri.EscapeDataString(signer.Sign(instanceId));
        var root = $"{request.Scheme}://{request.Host}{request.PathBase}{WebhookPrefix}/instances/{Uri.EscapeDataString(instanceId)}";
        return new DurableHttpManagementPayload(
            instanceId,
            $"{root}?sig={sig}",
            $"{root}/raiseEvent/{{eventName}}?sig={sig}",
            $"{root}/terminate?reason={{text}}&sig={sig}",
            $"{root}/suspend?reason={{text}}&sig={sig}",
            $"{root}/resume?reason={{text}}&sig={sig}",
            $"{root}?sig={sig}");
    }

    /// <summary>202 Accepted with a Location header (the status URL) and the management URLs as JSON.</summary>
    public static IResult CreateCheckStatusResponse(this DurableTaskClient client, HttpRequest request, string instanceId)
    {
        var payload = client.CreateHttpManagementPayload(request, instanceId);
        return new AcceptedWithRetry(payload.StatusQueryGetUri, payload);
    }

    private sealed class AcceptedWithRetry(string location, object body) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = "1";
            return Results.Accepted(location, body).ExecuteAsync(httpContext);
        }
    }

    /// <summary>Handles a request under <see cref="WebhookPrefix"/>.</summary>
    internal static async Task HandleAsync(HttpContext http)
    {
        var client = http.RequestServices.GetRequiredService<DurableTaskClient>();
        var signer = http.RequestServices.GetRequiredService<DurableWebhookSigner>();
        var segments = (http.Request.Path.Value ?? "").Trim('/').Split('/');
        // instances/{id}[/terminate|suspend|resume|raiseEvent/{name}]
        if (segments.Length < 2 || segments[0] != "instances")
        {
            await Problem(http, 404, "Not found", "Unknown durable management endpoint.");
            return;
        }
        var instanceId = Uri.UnescapeDataString(segments[1]);
        if (!signer.Verify(instanceId, http.Request.Query["sig"]))
        {
            await Problem(http, 401, "Unauthorized", "The management URL's signature is missing or does not match this instance.");
            return;
        }
        var method = http.Request.Method;
        var reason = (string?)http.Request.Query["reason"];
        try
        {
            switch (segments.Length, method)
            {
                case (2, "GET"):
                    var status = await client.GetInstanceAsync(instanceId, cancellationToken: http.RequestAborted);
                    if (status is null) { await Problem(http, 404, "Not found", $"No instance '{instanceId}'."); return; }
                    var body = new
                    {
                        name = status.Name,
                        instanceId = status.InstanceId,
                        runtimeStatus = status.RuntimeStatus.ToString(),
                        input = Json(status.SerializedInput),
                        customStatus = Json(status.SerializedCustomStatus),
                        output = Json(status.SerializedOutput),
                        failureDetails = status.FailureDetails,
                        createdTime = status.CreatedAt,
                        lastUpdatedTime = status.LastUpdatedAt,
                    };
                    if (status.IsRunning)
                    {
                        http.Response.Headers.RetryAfter = "1";
                        await Results.Accepted($"{http.Request.PathBase}{http.Request.Path}{http.Request.QueryString}", body).ExecuteAsync(http);
                    }
                    else
                    {
                        await Results.Ok(body).ExecuteAsync(http);
                    }
                    return;
                case (2, "DELETE"):
                    var purged = await client.PurgeInstanceAsync(instanceId, http.RequestAborted);
                    await (purged ? Results.Ok(new { instancesDeleted = 1 }) : Results.Problem(statusCode: 404, title: "Not found",
                        detail: $"Instance '{instanceId}' does not exist or has not finished.")).ExecuteAsync(http);
                    return;
                case (3, "POST") when segments[2] == "terminate":
                    await client.TerminateInstanceAsync(instanceId, reason, http.RequestAborted);
                    break;
                case (3, "POST") when segments[2] == "suspend":
                    await client.SuspendInstanceAsync(instanceId, reason, http.RequestAborted);
                    break;
                case (3, "POST") when segments[2] == "resume":
                    await client.ResumeInstanceAsync(instanceId, reason, http.RequestAborted);
                    break;
                case (4, "POST") when segments[2] == "raiseEvent":
                    object? data = null;
                    if (http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0)
                    {
                        try { data = await JsonSerializer.DeserializeAsync<JsonElement>(http.Request.Body, DataConverter.Options, http.RequestAborted); }
                        catch (JsonException ex) { await Problem(http, 400, "Bad request", "The event body is not valid JSON: " + ex.Message); return; }
                    }
                    await client.RaiseEventAsync(instanceId, Uri.UnescapeDataString(segments[3]), data, http.RequestAborted);
                    break;
                default:
                    await Problem(http, 404, "Not found", "Unknown durable management endpoint or method.");
                    return;
            }
            http.Response.StatusCode = StatusCodes.Status202Accepted;
        }
        catch (OrchestrationNotFoundException ex)
        {
            await Problem(http, 404, "Not found", ex.Message);
        }
    }

    private static JsonElement? Json(string? serialized) =>
        serialized is null ? null : JsonSerializer.Deserialize<JsonElement>(serialized);

    private static Task Problem(HttpContext http, int status, string title, string detail) =>
        Results.Problem(statusCode: status, title: title, detail: detail).ExecuteAsync(http);
}

/// <summary>Puts the management endpoints in front of the host's pipeline.</summary>
internal sealed class DurableHttpStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Map(DurableHttp.WebhookPrefix, branch => branch.Run(DurableHttp.HandleAsync));
        next(app);
    };
}
