using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Functions.Inference;
using Serverless.Functions.Tests.App;
using Serverless.Storage;
using Serverless.Security.Audit;
using Serverless.Testing;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// The function app with its inference functions under the local host (<see cref="FunctionAppHost"/>), over
/// embedded storage or Azurite, with the partner's steps (publish, enqueue, poll, read poison) a test needs.
/// </summary>
public sealed class InferenceHost : IAsyncDisposable
{
    private readonly FunctionAppHost _app;

    private InferenceHost(FunctionAppHost app) => _app = app;

    public Uri Address => _app.Address;
    public HttpClient Http => _app.Http;
    public string DataDirectory => _app.DataDirectory;
    public IServiceProvider Services => _app.Services;
    public IQueueStore Queues => Services.GetRequiredService<IQueueStore>();
    public IBlobStore Batches => Services.GetRequiredService<IBlobStoreProvider>().GetContainer("partner-batches");
    public IBlobStore Results => Services.GetRequiredService<IBlobStoreProvider>().GetContainer("partner-results");
    public IAuditLog Audit => _app.Audit;

    /// <param name="azurite">The app's blobs and queues (and the host's queue triggers) on Azurite instead of the data directory.</param>
    /// <param name="maxBatchBytes">App setting Inference__MaxBatchBytes.</param>
    public static async Task<InferenceHost> StartAsync(bool azurite = false, long maxBatchBytes = 1L << 30)
    {
        var settings = new Dictionary<string, string>
        {
            ["Inference__MaxBatchBytes"] = maxBatchBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        IQueueStore? queues = null;
        if (azurite)
        {
            settings["SERVERLESS_STORAGE"] = "azure";
            settings["AzureWebJobsStorage"] = TestServers.AzuriteConnectionString;
            queues = Stores.OpenAzureQueues(TestServers.AzuriteConnectionString);
        }
        return new InferenceHost(await FunctionAppHost.StartAsync(new FunctionAppHostOptions { Settings = settings, Queues = queues }));
    }

    /// <summary>Stops the host and its worker and starts them again on the same data directory.</summary>
    public Task RestartAsync() => _app.RestartAsync();

    public Task<string> TokenAsync(string subject, string role, string? tenant = null) => _app.TokenAsync(subject, role, tenant);

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string token, byte[]? body = null, string mediaType = "application/octet-stream")
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }
        return await Http.SendAsync(request);
    }

    /// <summary>Publishes the scenario's model as <paramref name="version"/> with an operator token.</summary>
    public async Task PublishAsync(InferenceScenario scenario, string version)
    {
        using var response = await SendAsync(HttpMethod.Put, $"api/inference/models/{version}", await TokenAsync("operator-1", "operator"), scenario.Publication(), "application/json");
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Uploads a batch blob under the tenant and puts the queue message, as a partner with storage access does.</summary>
    public async Task<string> EnqueueAsync(string tenant, string batchId, string version, byte[] batch, string token, string? sha256 = null)
    {
        await Batches.PutAsync($"{tenant}/{batchId}", new MemoryStream(batch));
        var message = JsonSerializer.SerializeToUtf8Bytes(new
        {
            batchId, tenant, modelVersion = version, blob = $"{tenant}/{batchId}",
            sha256 = sha256 ?? Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(batch)), token,
        }, JsonSerializerOptions.Web);
        await Queues.CreateQueueAsync("partner-batches");
        return await Queues.PutAsync("partner-batches", message);
    }

    /// <summary>
    /// Polls the batch until it is no longer running (or not yet known), within the poll budget of the rate
    /// limiter (120 a minute per partner): 100 ms growing to 1 s; a 429 waits its Retry-After. At most
    /// <paramref name="minutes"/> minutes (the full 10,000-record run takes longer than the tests).
    /// </summary>
    public async Task<HttpResponseMessage> WaitAsync(string tenant, string batchId, string token, double minutes = 3)
    {
        var deadline = DateTime.UtcNow.AddMinutes(minutes);
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var response = await SendAsync(HttpMethod.Get, $"api/partners/{tenant}/batches/{batchId}", token);
            if (response.StatusCode == HttpStatusCode.TooManyRequests && DateTime.UtcNow < deadline)
            {
                var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(5);
                response.Dispose();
                await Task.Delay(wait);
                continue;
            }
            var pending = response.StatusCode == HttpStatusCode.Accepted
                || (response.StatusCode == HttpStatusCode.NotFound && !(await response.Content.ReadAsStringAsync()).Contains("\"code\"", StringComparison.Ordinal));
            if (!pending || DateTime.UtcNow > deadline) return response;
            response.Dispose();
            await Task.Delay(delay);
            delay = TimeSpan.FromMilliseconds(Math.Min(1000, delay.TotalMilliseconds * 1.5));
        }
    }

    /// <summary>Poison messages on partner-batches-poison that match (received with a one-second lease, so they stay in the queue).</summary>
    public async Task<IReadOnlyList<PoisonMessage>> PoisonAsync(Func<PoisonMessage, bool> match, int expected = 1)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        var found = new List<PoisonMessage>();
        var seen = new HashSet<string>();
        while (found.Count < expected && DateTime.UtcNow < deadline)
        {
            var messages = await Queues.GetAsync("partner-batches-poison", 32, TimeSpan.FromSeconds(1));
            foreach (var m in messages)
            {
                if (!seen.Add(m.Id)) continue;
                var poison = JsonSerializer.Deserialize<PoisonMessage>(m.Body.Span, JsonSerializerOptions.Web)!;
                if (match(poison)) found.Add(poison);
            }
            if (found.Count < expected) await Task.Delay(200);
        }
        return found;
    }

    public async Task<List<AuditEntry>> AuditAsync(Func<AuditEntry, bool> match)
    {
        var entries = new List<AuditEntry>();
        await foreach (var e in Audit.ReadAsync()) if (match(e)) entries.Add(e);
        return entries;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
