using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Hosting;

namespace Serverless.Runtime.Tests.Support;

/// <summary>A function host on ASP.NET Core's TestServer with its own data directory.</summary>
internal sealed class TestHost : IAsyncDisposable
{
    public const string FastQueuesHostJson = """
        {
          "version": "2.0",
          "functionTimeout": "00:00:30",
          "logging": { "logLevel": { "default": "Warning" } },
          "extensions": { "queues": { "batchSize": 4, "maxDequeueCount": 3, "visibilityTimeout": "00:00:00",
                                      "maxPollingInterval": "00:00:00.200", "messageLease": "00:00:05" } }
        }
        """;

    private readonly TempDirectory? _ownedDirectory;

    private TestHost(WebApplication app, string dataDirectory, TempDirectory? owned)
    {
        App = app;
        DataDirectory = dataDirectory;
        _ownedDirectory = owned;
    }

    public WebApplication App { get; }
    public string DataDirectory { get; }
    public IServiceProvider Services => App.Services;
    public HttpClient CreateClient() => App.GetTestClient();

    public static async Task<TestHost> StartAsync(Type[] functionClasses, string? hostJson = null, TimeProvider? time = null,
        Action<FunctionsApplicationBuilder>? configure = null, string? dataDirectory = null, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var owned = dataDirectory is null ? new TempDirectory() : null;
        var directory = dataDirectory ?? owned!.Path;
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            HostJson = hostJson ?? FastQueuesHostJson,
            DataDirectory = directory,
            TimeProvider = time,
            HostJsonOverrides = overrides ?? new Dictionary<string, string>(),
        });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.AddFunctions(functionClasses);
        configure?.Invoke(builder);
        var app = builder.Build();
        await app.StartAsync();
        return new TestHost(app, directory, owned);
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        _ownedDirectory?.Dispose();
    }
}

/// <summary>A scratch directory removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "serverless-runtime-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="timeoutSeconds"/> (generous: the machine is shared).</summary>
    public static async Task HoldsAsync(Func<Task<bool>> condition, string what, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(25);
        }
        Assert.Fail($"timed out waiting for: {what}");
    }

    public static Task HoldsAsync(Func<bool> condition, string what, int timeoutSeconds = 30) =>
        HoldsAsync(() => Task.FromResult(condition()), what, timeoutSeconds);
}
