using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Hosting;

public sealed class HostJsonTests
{
    public sealed class NoFunctions
    {
        [Function("Ping")]
        public string Ping([HttpTrigger("get")] Microsoft.AspNetCore.Http.HttpRequest request) => "pong";
    }

    public sealed class DurableLikeOptions
    {
        public int MaxConcurrentActivities { get; set; } = 10;
        public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
        public Backend Store { get; set; } = Backend.Sqlite;
        public NestedOptions Postgres { get; set; } = new();
    }

    public sealed class NestedOptions
    {
        public string? ConnectionStringEnvironmentVariable { get; set; }
    }

    public enum Backend { Sqlite, Postgres }

    private static Task<TestHost> StartWith(string hostJson, Action<FunctionsApplicationBuilder>? configure = null) =>
        TestHost.StartAsync([typeof(NoFunctions)], hostJson, configure: configure);

    [Theory]
    [InlineData("""{ "version": "2.0", "extensions": { "queues": { "batchSize": 64 } } }""", "host.json: extensions.queues.batchSize: must be between 1 and 32")]
    [InlineData("""{ "version": "2.0", "extensions": { "queues": { "batchSize": "eight" } } }""", "host.json: extensions.queues.batchSize: must be an integer")]
    [InlineData("""{ "version": "2.0", "extensions": { "queues": { "batchSiz": 8 } } }""", "host.json: extensions.queues.batchSiz: unknown key")]
    [InlineData("""{ "version": "2.0", "extensions": { "http": { "routePrefix": "x" } } }""", "host.json: extensions.http: unknown key")]
    [InlineData("""{ "version": "2.0", "functionTimeout": "five minutes" }""", "host.json: functionTimeout: must be a time span \"hh:mm:ss\"")]
    [InlineData("""{ "version": "1.0" }""", "host.json: version: must be \"2.0\"")]
    [InlineData("""{ "version": "2.0", "logging": { "logLevel": { "default": "Loud" } } }""", "host.json: logging.logLevel.default: must be one of")]
    [InlineData("""{ "version": "2.0", "storage": { "blob": { "backend": "s3" } } }""", "host.json: storage.blob.backend: must be one of embedded, azure")]
    [InlineData("""{ "version": "2.0", "storage": { "queue": { "backend": "azure" } } }""", "host.json: storage.queue.endpoint: must be an absolute http(s) URL")]
    [InlineData("""{ "version": "2.0", "extensions": { "queues": { "maxPollingInterval": "00:00:00.010" } } }""", "host.json: extensions.queues.maxPollingInterval: must be between")]
    [InlineData("""{ "version": "2.0", "extensions": [] }""", "host.json: extensions: must be an object")]
    [InlineData("""{ "version": "2.0", """, "host.json: (document): not valid JSON")]
    [InlineData("""{ "version": "2.0", "colour": "blue" }""", "host.json: colour: unknown key")]
    public async Task Malformed_host_json_stops_the_host_with_a_message_naming_the_key(string hostJson, string expected)
    {
        var e = await Assert.ThrowsAsync<HostJsonException>(() => StartWith(hostJson));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task Every_problem_is_reported_at_once()
    {
        var e = await Assert.ThrowsAsync<HostJsonException>(() => StartWith(
            """{ "version": "2.0", "extensions": { "queues": { "batchSize": 0, "maxDequeueCount": 0, "nope": 1 } } }"""));
        var lines = e.Message.Split(Environment.NewLine);
        Assert.Equal(3, lines.Length);
        Assert.Contains(lines, l => l.StartsWith("host.json: extensions.queues.batchSize:"));
        Assert.Contains(lines, l => l.StartsWith("host.json: extensions.queues.maxDequeueCount:"));
        Assert.Contains(lines, l => l.StartsWith("host.json: extensions.queues.nope: unknown key"));
    }

    [Fact]
    public async Task A_valid_file_binds_values_case_insensitively_with_comments()
    {
        await using var host = await StartWith("""
            {
              // comments are allowed, as in Azure Functions
              "version": "2.0",
              "functionTimeout": "00:01:30",
              "extensions": { "queues": { "BatchSize": 8, "maxDequeueCount": 2, "visibilityTimeout": "00:00:03" } },
            }
            """);
        var queues = host.Services.GetRequiredService<IOptions<QueuesOptions>>().Value;
        Assert.Equal(8, queues.BatchSize);
        Assert.Equal(2, queues.MaxDequeueCount);
        Assert.Equal(TimeSpan.FromSeconds(3), queues.VisibilityTimeout);
        Assert.Equal(4, queues.EffectiveNewBatchThreshold);
        Assert.Equal(TimeSpan.FromSeconds(90), host.Services.GetRequiredService<IOptions<HostRootOptions>>().Value.FunctionTimeout);
    }

    [Fact]
    public async Task A_module_section_binds_validates_and_is_strict()
    {
        void Module(FunctionsApplicationBuilder b) => b.Services.AddHostJsonSection<DurableLikeOptions>("extensions.durableTask", (o, v) => v
            .Require(o.MaxConcurrentActivities is >= 1 and <= 100, "maxConcurrentActivities", "must be between 1 and 100"));

        await using (var host = await StartWith("""
            { "version": "2.0", "extensions": { "durableTask": { "maxConcurrentActivities": 4, "pollInterval": "00:00:00.250", "store": "postgres",
              "postgres": { "connectionStringEnvironmentVariable": "PG" } } } }
            """, Module))
        {
            var options = host.Services.GetRequiredService<IOptions<DurableLikeOptions>>().Value;
            Assert.Equal(4, options.MaxConcurrentActivities);
            Assert.Equal(TimeSpan.FromMilliseconds(250), options.PollInterval);
            Assert.Equal(Backend.Postgres, options.Store);
            Assert.Equal("PG", options.Postgres.ConnectionStringEnvironmentVariable);
        }

        var invalid = await Assert.ThrowsAsync<HostJsonException>(() => StartWith(
            """{ "version": "2.0", "extensions": { "durableTask": { "maxConcurrentActivities": 0 } } }""", Module));
        Assert.Equal("host.json: extensions.durableTask.maxConcurrentActivities: must be between 1 and 100", invalid.Message);

        var unknown = await Assert.ThrowsAsync<HostJsonException>(() => StartWith(
            """{ "version": "2.0", "extensions": { "durableTask": { "postgres": { "host": "x" } } } }""", Module));
        Assert.Equal("host.json: extensions.durableTask.postgres.host: unknown key", unknown.Message);

        // Without the module, its section is an unknown key.
        var withoutModule = await Assert.ThrowsAsync<HostJsonException>(() => StartWith(
            """{ "version": "2.0", "extensions": { "durableTask": { } } }"""));
        Assert.Equal("host.json: extensions.durableTask: unknown key", withoutModule.Message);
    }

    [Fact]
    public async Task The_real_process_exits_with_one_line_naming_the_key()
    {
        using var dir = new TempDirectory();
        var hostJson = Path.Combine(dir.Path, "host.json");
        await File.WriteAllTextAsync(hostJson, """{ "version": "2.0", "extensions": { "queues": { "maxDequeueCount": -1 } } }""");
        var (exitCode, stdout, stderr) = await TestWorkerProcess.RunToEndAsync(["host", "--data-dir", dir.Path, "--host-json", hostJson, "--port", "0"]);
        Assert.Equal(1, exitCode);
        Assert.Equal("host.json: extensions.queues.maxDequeueCount: must be between 1 and 1000", stderr.Trim());
        Assert.DoesNotContain("listening", stdout);
    }

    [Fact]
    public async Task An_unknown_command_line_option_is_a_one_line_error()
    {
        var (exitCode, _, stderr) = await TestWorkerProcess.RunToEndAsync(["host", "--data-directory", "/tmp/x"]);
        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: unknown option '--data-directory'", stderr.Trim());
    }
}

public sealed class DataDirectoryTests
{
    [Fact]
    public async Task The_command_line_data_directory_beats_host_json()
    {
        using var fromCli = new TempDirectory();
        using var fromFile = new TempDirectory();
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            Args = ["--data-dir", fromCli.Path],
            HostJson = $$"""{ "version": "2.0", "storage": { "dataDirectory": {{System.Text.Json.JsonSerializer.Serialize(fromFile.Path)}} } }""",
            HostJsonOverrides = new Dictionary<string, string>(),
        });
        Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.UseTestServer(builder.WebApplicationBuilder.WebHost);
        builder.AddFunctions(typeof(HostJsonTests.NoFunctions));
        await using var app = builder.Build();
        Assert.Equal(Path.GetFullPath(fromCli.Path), app.Services.GetRequiredService<Serverless.Runtime.Storage.DataDirectory>().Path);
        await app.StartAsync();
        var queues = app.Services.GetRequiredService<Serverless.Runtime.Storage.IQueueStore>();
        await queues.PutAsync("where-am-i", new byte[] { 1 });
        Assert.True(File.Exists(Path.Combine(fromCli.Path, "queues.db")));
        Assert.False(File.Exists(Path.Combine(fromFile.Path, "queues.db")));
        await app.StopAsync();
    }

    [Fact]
    public async Task Without_any_setting_host_json_chooses_the_data_directory()
    {
        using var fromFile = new TempDirectory();
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            HostJson = $$"""{ "version": "2.0", "storage": { "dataDirectory": {{System.Text.Json.JsonSerializer.Serialize(fromFile.Path)}} } }""",
            HostJsonOverrides = new Dictionary<string, string>(),
        });
        Microsoft.AspNetCore.TestHost.WebHostBuilderExtensions.UseTestServer(builder.WebApplicationBuilder.WebHost);
        builder.AddFunctions(typeof(HostJsonTests.NoFunctions));
        await using var app = builder.Build();
        var environment = Environment.GetEnvironmentVariable("SERVERLESS_DATA_DIR"); // outranks host.json when set
        Assert.Equal(Path.GetFullPath(string.IsNullOrEmpty(environment) ? fromFile.Path : environment),
            app.Services.GetRequiredService<Serverless.Runtime.Storage.DataDirectory>().Path);
    }
}
