using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Durable;
using Serverless.Functions.Inference;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Queues;
using Serverless.Runtime.Storage;
using Serverless.Security.Audit;
using Serverless.Security.Hosting;
using Serverless.Security.Identity;
using Serverless.Testing;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// The function app with the inference functions, in this process, on a real Kestrel port at
/// 127.0.0.1 (so the CLI, in or out of process, can reach it), over embedded storage or Azurite.
/// </summary>
public sealed class InferenceHost : IAsyncDisposable
{
    public const string AzuriteKeyVariable = "SERVERLESS_TEST_INFERENCE_AZURITE_KEY";

    private readonly WebApplication _app;
    private readonly string _dataDirectory;

    private InferenceHost(WebApplication app, string dataDirectory, Uri address)
    {
        _app = app;
        _dataDirectory = dataDirectory;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(3) };
    }

    public Uri Address { get; }
    public HttpClient Http { get; }
    public string DataDirectory => _dataDirectory;
    public IServiceProvider Services => _app.Services;
    public IQueueStore Queues => Services.GetRequiredService<IQueueStore>();
    public IBlobStore Batches => Services.GetRequiredService<IBlobStoreProvider>().GetContainer("partner-batches");
    public IBlobStore Results => Services.GetRequiredService<IBlobStoreProvider>().GetContainer("partner-results");
    public IAuditLog Audit => Services.GetRequiredService<IAuditLog>();

    /// <param name="azurite">Blob and queue storage on Azurite (TestServers endpoints) instead of the data directory.</param>
    /// <param name="maxBatchBytes">host.json extensions.inference.maxBatchBytes.</param>
    public static async Task<InferenceHost> StartAsync(bool azurite = false, long maxBatchBytes = 1L << 30, string? dataDirectory = null)
    {
        var dir = dataDirectory ?? Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "inference-host-" + Guid.NewGuid().ToString("N"))).FullName;
        var storage = "";
        if (azurite)
        {
            Environment.SetEnvironmentVariable(AzuriteKeyVariable, TestServers.AzuriteAccountKey);
            storage = $$"""
                , "storage": {
                    "blob":  { "backend": "azure", "endpoint": "{{TestServers.AzuriteBlobEndpoint}}", "accountName": "{{TestServers.AzuriteAccountName}}", "authentication": "sharedKey", "accountKeyEnvironmentVariable": "{{AzuriteKeyVariable}}" },
                    "queue": { "backend": "azure", "endpoint": "{{TestServers.AzuriteQueueEndpoint}}", "accountName": "{{TestServers.AzuriteAccountName}}", "authentication": "sharedKey", "accountKeyEnvironmentVariable": "{{AzuriteKeyVariable}}" }
                  }
                """;
        }
        var hostJson = $$"""
            {
              "version": "2.0",
              "functionTimeout": "00:05:00",
              "logging": { "logLevel": { "default": "Warning" } },
              "extensions": {
                "queues": { "batchSize": 4, "maxDequeueCount": 3, "visibilityTimeout": "00:00:01", "maxPollingInterval": "00:00:00.200", "messageLease": "00:01:00" },
                "durableTask": { "hubName": "inference", "minPollingInterval": "00:00:00.010", "maxPollingInterval": "00:00:00.100", "leaseDuration": "00:00:10",
                                 "storageProvider": { "type": "sqlite", "durability": "normal" } },
                "inference": { "allowInsecureParametersForTests": true, "maxBatchBytes": {{maxBatchBytes}} }
              }
              {{storage}}
            }
            """;
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            Args = ["--port", "0"],
            HostJson = hostJson,
            DataDirectory = dir,
            HostJsonOverrides = new Dictionary<string, string>(),
        });
        builder.Services.AddServerlessSecurity();
        builder.Services.AddDurableTask();
        builder.Services.AddInference();
        builder.AddFunctions(typeof(PartnerBatchFunctions), typeof(PartnerBatchOrchestration), typeof(InferenceModelFunctions), typeof(PartnerKeyFunctions));
        var app = builder.Build();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new InferenceHost(app, dir, new Uri(address.TrimEnd('/') + "/"));
    }

    public Task<string> TokenAsync(string subject, string role, string? tenant = null) =>
        Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest(subject, [role], tenant));

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
                var poison = PoisonMessage.Parse(m.Body.Span);
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

    private bool _stopped;

    /// <summary>Stops the host; with <paramref name="keepData"/> the data directory stays for a host started after it.</summary>
    public async Task StopAsync(bool keepData)
    {
        if (_stopped) return;
        _stopped = true;
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        if (!keepData)
        {
            try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(keepData: false);
}
