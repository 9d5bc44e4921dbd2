using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Durable.Tests.Hosting;

/// <summary>Functions of the host-integration test: an HTTP starter, an orchestrator and an activity.</summary>
public sealed class DurableHostFunctions
{
    [Function("StartGreeting")]
    public async Task<IResult> Start([HttpTrigger("post", Route = "greetings/{city}")] HttpRequest request, string city, [DurableClient] DurableTaskClient client)
    {
        var id = await client.ScheduleNewOrchestrationInstanceAsync("GreetingOrchestrator", city);
        return client.CreateCheckStatusResponse(request, id);
    }

    [Function("GreetingOrchestrator")]
    public static async Task<string> Orchestrate([OrchestrationTrigger] TaskOrchestrationContext context, ILogger logger)
    {
        var city = context.GetInput<string>()!;
        logger.LogInformation("greeting {City}", city);
        var first = await context.CallActivityAsync<string>("Greet", city);
        context.SetCustomStatus("awaiting confirmation");
        var confirmation = await context.WaitForExternalEvent<Confirmation>("confirm");
        var second = await context.CallActivityAsync<string>("Greet", confirmation.By);
        return $"{first} / {second}";
    }

    [Function("Greet")]
    public string Greet([ActivityTrigger] string name, FunctionContext context) => $"Hello {name} ({context.FunctionName})";

    public sealed record Confirmation(string By);
}

public sealed class FunctionHostIntegrationTests
{
    private static string HostJson(string extra = "") => $$"""
        {
          "version": "2.0",
          "logging": { "logLevel": { "default": "Warning" } },
          "extensions": { "durableTask": { "hubName": "hosttest", "minPollingInterval": "00:00:00.005", "maxPollingInterval": "00:00:00.050" {{extra}} } }
        }
        """;

    private static async Task<(WebApplication App, string Dir)> StartAsync(string hostJson)
    {
        var dir = Path.Combine(Path.GetTempPath(), "serverless-durable-host-tests", Guid.NewGuid().ToString("N"));
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions { HostJson = hostJson, DataDirectory = dir });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddDurableTask();
        builder.AddFunctions(typeof(DurableHostFunctions));
        var app = builder.Build();
        await app.StartAsync();
        return (app, dir);
    }

    [Fact]
    public async Task Http_starter_answers_202_with_signed_urls_that_query_signal_and_purge_the_instance()
    {
        var (app, dir) = await StartAsync(HostJson());
        try
        {
            var http = app.GetTestClient();
            var started = await http.PostAsync("/api/greetings/Oslo", null);
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            var urls = (await started.Content.ReadFromJsonAsync<DurableHttpManagementPayload>())!;
            Assert.Equal(urls.StatusQueryGetUri, started.Headers.Location!.ToString());
            Assert.Contains("/runtime/webhooks/durabletask/instances/" + urls.Id, urls.StatusQueryGetUri);
            Assert.True(File.Exists(Path.Combine(dir, "durable-hosttest.db")));

            // Running: 202 until the event arrives.
            JsonElement status;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            do
            {
                var poll = await http.GetAsync(urls.StatusQueryGetUri);
                Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
                status = await poll.Content.ReadFromJsonAsync<JsonElement>();
                await Task.Delay(20);
            } while (status.GetProperty("customStatus").ValueKind != JsonValueKind.String && DateTime.UtcNow < deadline);
            Assert.Equal("awaiting confirmation", status.GetProperty("customStatus").GetString());

            // A URL signed for another instance is refused.
            var forged = urls.StatusQueryGetUri.Replace(urls.Id, "someone-else", StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(forged)).StatusCode);
            var unsigned = urls.StatusQueryGetUri[..urls.StatusQueryGetUri.IndexOf('?', StringComparison.Ordinal)];
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(unsigned)).StatusCode);

            var raise = await http.PostAsJsonAsync(urls.SendEventPostUri.Replace("{eventName}", "confirm", StringComparison.Ordinal), new { by = "Bergen" });
            Assert.Equal(HttpStatusCode.Accepted, raise.StatusCode);
            var badBody = await http.PostAsync(urls.SendEventPostUri.Replace("{eventName}", "confirm", StringComparison.Ordinal),
                new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, badBody.StatusCode);
            Assert.Equal("application/problem+json", badBody.Content.Headers.ContentType!.MediaType);

            HttpResponseMessage done;
            deadline = DateTime.UtcNow.AddSeconds(30);
            while ((done = await http.GetAsync(urls.StatusQueryGetUri)).StatusCode == HttpStatusCode.Accepted && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
            var final = await done.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("Completed", final.GetProperty("runtimeStatus").GetString());
            Assert.Equal("Hello Oslo (Greet) / Hello Bergen (Greet)", final.GetProperty("output").GetString());

            var purge = await http.DeleteAsync(urls.PurgeHistoryDeleteUri);
            Assert.Equal(HttpStatusCode.OK, purge.StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(urls.StatusQueryGetUri)).StatusCode);

            var health = await http.GetAsync("/api/health");
            Assert.Contains("durable", await health.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Terminate_url_ends_the_instance()
    {
        var (app, dir) = await StartAsync(HostJson());
        try
        {
            var http = app.GetTestClient();
            var urls = (await (await http.PostAsync("/api/greetings/Rome", null)).Content.ReadFromJsonAsync<DurableHttpManagementPayload>())!;
            var terminate = await http.PostAsync(urls.TerminatePostUri.Replace("{text}", "cancelled", StringComparison.Ordinal), null);
            Assert.Equal(HttpStatusCode.Accepted, terminate.StatusCode);
            var client = app.Services.GetRequiredService<DurableTaskClient>();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var final = await client.WaitForInstanceCompletionAsync(urls.Id, cancellationToken: cts.Token);
            Assert.Equal(OrchestrationRuntimeStatus.Terminated, final.RuntimeStatus);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task Postgres_without_its_connection_string_variable_fails_at_start_naming_the_variable()
    {
        var variable = "SERVERLESS_TEST_UNSET_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            HostJson = HostJson(", \"storageProvider\": { \"type\": \"postgres\", \"connectionStringName\": \"" + variable + "\" }"),
            DataDirectory = Path.Combine(Path.GetTempPath(), "serverless-durable-host-tests", Guid.NewGuid().ToString("N")),
        });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddDurableTask();
        builder.AddFunctions(typeof(DurableHostFunctions));
        await using var app = builder.Build();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => app.StartAsync());
        Assert.Contains(variable, error.Message);
    }

    [Fact]
    public void Invalid_durableTask_settings_stop_the_host_with_the_key_named()
    {
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            HostJson = HostJson(""", "maxConcurrentActivityFunctions": 0, "storageProvider": { "type": "mongo" }"""),
            DataDirectory = Path.Combine(Path.GetTempPath(), "serverless-durable-host-tests", Guid.NewGuid().ToString("N")),
        });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddDurableTask();
        builder.AddFunctions(typeof(DurableHostFunctions));
        var error = Assert.Throws<HostJsonException>(() => builder.Build());
        Assert.Contains("extensions.durableTask.maxConcurrentActivityFunctions", error.Message);
        Assert.Contains("storageProvider.type", error.Message);
    }
}
