using System.Reflection;
using Microsoft.Extensions.Logging;
using Serverless.Host;
using Serverless.Host.Http;

namespace Serverless.Host.Tests;

/// <summary>
/// One local host running the real sample app (tests/Serverless.Host.SampleApp, built before this
/// project), shared by the tests of a collection: starting a worker process takes a second or two.
/// </summary>
public sealed class SampleAppHost : IAsyncLifetime
{
    public const string MasterKey = "master-key-for-tests-0000000001";
    public const string HostKey = "host-key-for-tests-000000000001";
    public const string SecretFunctionKey = "secret-function-key-0000000001";
    public const string EchoFunctionKey = "echo-function-key-00000000001";

    private LocalHost? _host;

    public HttpClient Client { get; private set; } = null!;

    public IReadOnlyList<string> FunctionNames => _host!.FunctionNames;

    public static string AppDirectory =>
        typeof(SampleAppHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "SampleAppDirectory").Value!;

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(Path.Combine(AppDirectory, "worker.config.json")), $"the sample app is not built in {AppDirectory}");
        _host = await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = AppDirectory,
            HttpPort = 0,
            Keys = new FunctionKeys(MasterKey, [HostKey], new Dictionary<string, IReadOnlyCollection<string>>
            {
                ["Secret"] = [SecretFunctionKey],
                ["Echo"] = [EchoFunctionKey],
            }),
            LoggerFactory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning)),
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
    }
}

[CollectionDefinition(Name)]
public sealed class SampleAppCollection : ICollectionFixture<SampleAppHost>
{
    public const string Name = "sample app under the local host";
}
