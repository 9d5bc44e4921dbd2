using System.Reflection;
using Microsoft.Extensions.Logging;
using Serverless.Host;
using Serverless.Host.Http;
using Serverless.Storage;

namespace Serverless.Host.Tests;

/// <summary>
/// One local host running the real sample app (tests/Serverless.Host.SampleApp, built before this
/// project), shared by the tests of a collection: starting a worker process takes a second or two.
/// </summary>
public class SampleAppHost : IAsyncLifetime
{
    public const string MasterKey = "master-key-for-tests-0000000001";
    public const string HostKey = "host-key-for-tests-000000000001";
    public const string SecretFunctionKey = "secret-function-key-0000000001";
    public const string EchoFunctionKey = "echo-function-key-00000000001";
    public const string AdminOnlyFunctionKey = "admin-only-function-key-00001";

    private LocalHost? _host;
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("serverless-host-tests-").FullName;

    /// <summary>The host's request body limit in these tests (28 MiB: under the worker's own Kestrel limit of 30 MB).</summary>
    public const long MaxRequestBodySize = 28L * 1024 * 1024;

    /// <summary>Where HTTP triggers are served.</summary>
    public Uri HttpAddress => _host!.HttpAddress;

    /// <summary>The embedded queue the host's triggers read, shared with the tests that feed them.</summary>
    public IQueueStore Queues { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public IReadOnlyList<string> FunctionNames => _host!.FunctionNames;

    public int WorkerProcessId => _host!.WorkerProcessId;

    public int WorkerRestarts => _host!.WorkerRestarts;

    public static string AppDirectory => BuildOutput("SampleAppDirectory");

    /// <summary>The local host's command (serverless-host.dll), for tests that run it as a process.</summary>
    public static string LocalHostDll => BuildOutput("LocalHostDll");

    /// <summary>The build output this fixture runs (a derived fixture runs another sample app).</summary>
    protected virtual string BuildOutputDirectory => AppDirectory;

    protected static string BuildOutput(string key) =>
        typeof(SampleAppHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == key).Value!;

    public async Task InitializeAsync()
    {
        string appDirectory = BuildOutputDirectory;
        Assert.True(File.Exists(Path.Combine(appDirectory, "worker.config.json")), $"the sample app is not built in {appDirectory}");
        Queues = Stores.OpenEmbeddedQueues(Path.Combine(_dataDirectory, "queues.db"));
        _host = await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = appDirectory,
            DataDirectory = _dataDirectory,
            Queues = Queues,
            QueueMessageLease = TimeSpan.FromSeconds(30),
            HttpPort = 0,
            MaxRequestBodySize = MaxRequestBodySize,
            Keys = new FunctionKeys(MasterKey, [HostKey], new Dictionary<string, IReadOnlyCollection<string>>
            {
                ["Secret"] = [SecretFunctionKey],
                ["Echo"] = [EchoFunctionKey],
                ["AdminOnly"] = [AdminOnlyFunctionKey],
            }),
            // SERVERLESS_HOST_TEST_LOG=1 prints the host's and the worker's log (for a failing test).
            LoggerFactory = Environment.GetEnvironmentVariable("SERVERLESS_HOST_TEST_LOG") == "1"
                ? LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Information).AddSimpleConsole(c => c.SingleLine = true))
                : LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning)),
        });
        Client = new HttpClient { BaseAddress = _host.HttpAddress };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        (Queues as IDisposable)?.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class SampleAppCollection : ICollectionFixture<SampleAppHost>
{
    public const string Name = "sample app under the local host";
}

/// <summary>The ASP.NET Core integration sample app (tests/Serverless.Host.AspNetSampleApp) under the local host.</summary>
public sealed class AspNetSampleAppHost : SampleAppHost
{
    protected override string BuildOutputDirectory => BuildOutput("AspNetSampleAppDirectory");
}

[CollectionDefinition(Name)]
public sealed class AspNetSampleAppCollection : ICollectionFixture<AspNetSampleAppHost>
{
    public const string Name = "ASP.NET Core integration sample app under the local host";
}
