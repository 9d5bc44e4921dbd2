using System.Net.Http.Headers;
using Serverless.Contracts.Inference;

namespace Serverless.Client.Partner;

/// <summary>The partner's HTTP calls: model package, key registration, batch submission, polling.</summary>
internal sealed class PartnerApi(HttpClient http, string? token) : IDisposable
{
    public static PartnerApi Create(Uri server, string? token, TimeSpan? timeout = null) =>
        new(ClientHttp.Create("partner", server, timeout ?? TimeSpan.FromMinutes(10), serverTrust: null), token);

    public async Task<string> GetModelPackageAsync(string version, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, InferenceRoutes.Model(version), null, cancellationToken);
        await ApiResponses.EnsureSuccessAsync(response, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    public async Task<ModelVersionInfo> PublishModelAsync(string version, byte[] body, CancellationToken cancellationToken) =>
        await ApiResponses.ReadContractAsync<ModelVersionInfo>(await SendAsync(HttpMethod.Put, InferenceRoutes.Model(version), Json(body), cancellationToken), cancellationToken);

    public async Task<KeyRegistration> RegisterKeysAsync(string tenant, string version, byte[] bundle, CancellationToken cancellationToken) =>
        await ApiResponses.ReadContractAsync<KeyRegistration>(await SendAsync(HttpMethod.Put, InferenceRoutes.PartnerKeys(tenant, version), Binary(bundle), cancellationToken), cancellationToken);

    public async Task<SubmissionReceipt> SubmitAsync(string tenant, string batchId, string version, byte[] batch, CancellationToken cancellationToken) =>
        await ApiResponses.ReadContractAsync<SubmissionReceipt>(
            await SendAsync(HttpMethod.Post, InferenceRoutes.PartnerBatchSubmission(tenant, batchId, version), Binary(batch), cancellationToken), cancellationToken);

    /// <summary>One poll: the result bytes when done, null while the batch runs (202). A refusal or failure throws.</summary>
    public async Task<(byte[]? Result, string? Phase)> PollAsync(string tenant, string batchId, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, InferenceRoutes.PartnerBatch(tenant, batchId), null, cancellationToken);
        // Still over the poll budget after the client's retries (each waited the server's Retry-After): report "still waiting".
        if (response.StatusCode == HttpStatusCode.TooManyRequests) return (null, "rate limited");
        if (response.StatusCode == HttpStatusCode.Accepted)
        {
            var status = await response.Content.ReadFromJsonElementAsync(cancellationToken);
            var phase = status.TryGetProperty("progress", out var p) && p.ValueKind == JsonValueKind.Object && p.TryGetProperty("phase", out var ph) ? ph.GetString() : null;
            return (null, phase ?? (status.TryGetProperty("status", out var s) ? s.GetString() : null));
        }
        // A 404 right after a queue submission only means the message is not picked up yet.
        if (response.StatusCode == HttpStatusCode.NotFound && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            var problem = await response.Content.ReadFromJsonElementAsync(cancellationToken);
            if (!problem.TryGetProperty("code", out _)) return (null, "queued");
        }
        await ApiResponses.EnsureSuccessAsync(response, cancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (response.Headers.TryGetValues("X-Result-Sha256", out var values) && values.FirstOrDefault() is { } expected
            && !string.Equals(expected, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), StringComparison.Ordinal))
            throw new InvalidDataException("the result's SHA-256 does not match the server's X-Result-Sha256 header (truncated download?)");
        return (bytes, "done");
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (!string.IsNullOrEmpty(token)) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
    }

    private static ByteArrayContent Binary(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    private static ByteArrayContent Json(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    public void Dispose() => http.Dispose();
}
