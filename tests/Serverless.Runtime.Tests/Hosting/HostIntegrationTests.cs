using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Tests.Support;
using Serverless.Testing;

namespace Serverless.Runtime.Tests.Hosting;

public sealed class HostIntegrationTests
{
    public sealed class Seen
    {
        public List<string> Entries { get; } = [];
        public TaskCompletionSource<string> Processed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public sealed class TraceMiddleware(Seen seen) : IFunctionsWorkerMiddleware
    {
        public Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
        {
            lock (seen.Entries) seen.Entries.Add($"{context.FunctionName}:{context.Definition.TriggerKind}:http={context.HttpContext is not null}");
            return next(context);
        }
    }

    public sealed class AppFunctions(IBlobStore blobs, IQueueStore queues, Seen seen)
    {
        [Function("SaveNote")]
        public async Task<IResult> Save([HttpTrigger("put", Route = "notes/{name}")] HttpRequest request, string name, CancellationToken cancellationToken)
        {
            var properties = await blobs.PutAsync("notes/" + name, request.Body, BlobCondition.MustNotExist, cancellationToken);
            await queues.PutAsync("note-events", Encoding.UTF8.GetBytes(name), cancellationToken: cancellationToken);
            return Results.Ok(new { properties.ETag });
        }

        [Function("NoteEvent")]
        public async Task OnNote([QueueTrigger("note-events")] string name)
        {
            await using var note = await blobs.GetAsync("notes/" + name);
            using var reader = new StreamReader(note!.Content);
            seen.Processed.TrySetResult(await reader.ReadToEndAsync());
        }

        [Function("Slow")]
        public async Task<string> Slow([HttpTrigger("get", Route = "slow")] HttpRequest request, CancellationToken cancellationToken)
        {
            await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
            return "too late";
        }
    }

    private static void Configure(FunctionsApplicationBuilder b)
    {
        b.Services.AddSingleton<Seen>();
        b.UseMiddleware<TraceMiddleware>();
    }

    private static async Task RunScenarioAsync(TestHost host, string expectedBackend)
    {
        var client = host.CreateClient();
        var health = JsonDocument.Parse(await client.GetStringAsync("/api/health")).RootElement;
        Assert.Equal("Healthy", health.GetProperty("status").GetString());
        Assert.Equal(expectedBackend, health.GetProperty("checks").GetProperty("blob").GetProperty("data").GetProperty("backend").GetString());
        Assert.Equal(expectedBackend, health.GetProperty("checks").GetProperty("queue").GetProperty("data").GetProperty("backend").GetString());

        var name = "n" + Guid.NewGuid().ToString("N")[..8];
        var created = await client.PutAsync($"/api/notes/{name}", new StringContent("remember the milk"));
        Assert.Equal(HttpStatusCode.OK, created.StatusCode);
        var again = await client.PutAsync($"/api/notes/{name}", new StringContent("overwrite?"));
        Assert.Equal(HttpStatusCode.InternalServerError, again.StatusCode); // the condition failed inside the function

        var seen = host.Services.GetRequiredService<Seen>();
        Assert.Equal("remember the milk", await seen.Processed.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        lock (seen.Entries)
        {
            Assert.Contains("SaveNote:http:http=True", seen.Entries);
            Assert.Contains("NoteEvent:queue:http=False", seen.Entries);
        }
    }

    [Fact]
    public async Task Http_and_queue_functions_share_the_embedded_stores_and_middleware_sees_every_trigger()
    {
        await using var host = await TestHost.StartAsync([typeof(AppFunctions)], configure: Configure);
        await RunScenarioAsync(host, "embedded");
    }

    [ServerFact]
    public async Task The_same_app_runs_on_the_azure_backends_selected_by_overrides()
    {
        Environment.SetEnvironmentVariable("SERVERLESS_TEST_AZURITE_KEY", TestServers.AzuriteAccountKey);
        var overrides = new Dictionary<string, string>
        {
            ["storage__defaultContainer"] = "app-" + Guid.NewGuid().ToString("N")[..12],
            ["storage__blob__backend"] = "azure",
            ["storage__blob__endpoint"] = TestServers.AzuriteBlobEndpoint,
            ["storage__blob__accountName"] = TestServers.AzuriteAccountName,
            ["storage__blob__accountKeyEnvironmentVariable"] = "SERVERLESS_TEST_AZURITE_KEY",
            ["storage__queue__backend"] = "azure",
            ["storage__queue__endpoint"] = TestServers.AzuriteQueueEndpoint,
            ["storage__queue__accountName"] = TestServers.AzuriteAccountName,
            ["storage__queue__accountKeyEnvironmentVariable"] = "SERVERLESS_TEST_AZURITE_KEY",
        };
        await using var host = await TestHost.StartAsync([typeof(AppFunctions)], configure: Configure, overrides: overrides);
        await RunScenarioAsync(host, "azure");
    }

    [Fact]
    public async Task Overrides_use_azure_functions_env_names_and_are_validated_like_the_file()
    {
        await using (var host = await TestHost.StartAsync([typeof(AppFunctions)], configure: Configure,
            overrides: new Dictionary<string, string> { ["extensions__queues__batchSize"] = "7", ["functionTimeout"] = "00:00:09" }))
        {
            Assert.Equal(7, host.Services.GetRequiredService<IOptions<QueuesOptions>>().Value.BatchSize);
            Assert.Equal(TimeSpan.FromSeconds(9), host.Services.GetRequiredService<IOptions<HostRootOptions>>().Value.FunctionTimeout);
        }
        var e = await Assert.ThrowsAsync<HostJsonException>(() => TestHost.StartAsync([typeof(AppFunctions)], configure: Configure,
            overrides: new Dictionary<string, string> { ["extensions__queues__batchSize"] = "99" }));
        Assert.Equal("host.json: extensions.queues.batchSize: must be between 1 and 32", e.Message);
    }

    [Fact]
    public async Task A_function_exceeding_functionTimeout_is_cancelled_and_answers_504()
    {
        await using var host = await TestHost.StartAsync([typeof(AppFunctions)], configure: Configure,
            overrides: new Dictionary<string, string> { ["functionTimeout"] = "00:00:00.300" });
        var response = await host.CreateClient().GetAsync("/api/slow");
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
