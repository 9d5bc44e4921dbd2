using System.Net.Http.Headers;
using System.Reflection;
using System.Text.Json;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Functions.Federations.Services;
using Serverless.Functions.Hosting;
using Serverless.Host;
using Serverless.Host.Durable;
using Serverless.Host.Http;
using Serverless.Storage;
using Serverless.Security;
using Serverless.Security.Audit;
using Serverless.Security.Hosting;
using Serverless.Security.Identity;

namespace Serverless.Functions.Tests.App;

/// <summary>How a test runs the function app.</summary>
public sealed record FunctionAppHostOptions
{
    /// <summary>An existing data directory (a restart); null makes a fresh one with its own dev CA.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>App settings over the defaults (e.g. <c>Inference__MaxBatchBytes</c>, <c>SERVERLESS_STORAGE</c>).</summary>
    public IReadOnlyDictionary<string, string>? Settings { get; init; }

    /// <summary>The queues the host's triggers read (Azurite); null: the embedded queue of the data directory.</summary>
    public IQueueStore? Queues { get; init; }

    /// <summary>The durable task hub; null: the embedded SQLite hub of the data directory.</summary>
    public DurableBackend? Durable { get; init; }

    /// <summary>The local host's limit on a request body (413 above it); null: its default (100 MiB, as on Azure).</summary>
    public long? MaxRequestBodySize { get; init; }

    /// <summary>
    /// HTTPS with a server certificate of the data directory's dev CA, asking callers for client certificates
    /// in this mode (the front end's clientCertMode); null: plain HTTP.
    /// </summary>
    public ClientCertificateMode? Https { get; init; }
}

/// <summary>
/// The real function app (functions/Serverless.Functions' build output) under the local host
/// (runtime/Serverless.Host), its worker in a process of its own, HTTP on 127.0.0.1 with a free port,
/// over a data directory of its own. <see cref="Services"/> is the tests' own view of that data directory
/// (stores, audit log, tokens), opened after the app made its keys.
/// </summary>
public sealed class FunctionAppHost : IAsyncDisposable
{
    public const string MasterKey = "master-key-for-function-app-tests-01";

    private readonly FunctionAppHostOptions _options;
    private readonly bool _ownsDataDirectory;
    private LocalHost _host;
    private ServiceProvider? _services;

    private FunctionAppHost(LocalHost host, string dataDirectory, FunctionAppHostOptions options, bool ownsDataDirectory)
    {
        _host = host;
        _options = options;
        _ownsDataDirectory = ownsDataDirectory;
        DataDirectory = dataDirectory;
        Http = CreateClient();
    }

    /// <summary>The app's build output, built before this test project.</summary>
    public static string AppDirectory => Metadata("FunctionAppDirectory");

    /// <summary>The local host's command (serverless-host.dll), for tests that run it as a process.</summary>
    public static string LocalHostDll => Metadata("LocalHostDll");

    public Uri Address => _host.HttpAddress;

    public HttpClient Http { get; private set; }

    public string DataDirectory { get; }

    public LocalHost Host => _host;

    public IServiceProvider Services => _services ??= OpenServices(DataDirectory, _options.Settings);

    public FederationStore Store => Services.GetRequiredService<FederationStore>();

    public IAuditLog Audit => Services.GetRequiredService<IAuditLog>();

    public static async Task<FunctionAppHost> StartAsync(FunctionAppHostOptions? options = null)
    {
        options ??= new FunctionAppHostOptions();
        var owns = options.DataDirectory is null;
        var dir = options.DataDirectory ?? Directory.CreateTempSubdirectory("function-app-").FullName;
        if (owns) DevTools.CreateCertificateAuthority(dir);
        var host = await StartHostAsync(dir, options);
        return new FunctionAppHost(host, dir, options, owns);
    }

    /// <summary>Stops the host and its worker, and starts them again on the same data directory (a restart).</summary>
    public async Task RestartAsync()
    {
        Http.Dispose();
        await _host.DisposeAsync();
        _host = await StartHostAsync(DataDirectory, _options);
        Http = CreateClient();
    }

    /// <summary>A bearer token issued by the app's own signing key (as the CLI's <c>token</c> command does).</summary>
    public Task<string> TokenAsync(string subject, string role, string? tenant = null) =>
        Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest(subject, [role], tenant));

    /// <summary>A durable instance's status through the host's management API (null when it does not exist).</summary>
    public async Task<JsonElement?> InstanceAsync(string instanceId)
    {
        using var response = await Http.GetAsync($"runtime/webhooks/durabletask/instances/{Uri.EscapeDataString(instanceId)}?code={MasterKey}");
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return null;
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static async Task<LocalHost> StartHostAsync(string dataDirectory, FunctionAppHostOptions options)
    {
        Assert.True(File.Exists(Path.Combine(AppDirectory, "functions.metadata")), $"the function app is not built in {AppDirectory}");
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            [LocalHost.DataDirectorySetting] = dataDirectory,
            // Small CKKS rings keep the inference tests fast; never set in production.
            ["Inference__AllowInsecureParametersForTests"] = "true",
        };
        foreach (var (key, value) in options.Settings ?? new Dictionary<string, string>()) settings[key] = value;
        return await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = AppDirectory,
            DataDirectory = dataDirectory,
            HttpPort = 0,
            Keys = new FunctionKeys(MasterKey, [], new Dictionary<string, IReadOnlyCollection<string>>()),
            Settings = settings,
            Queues = options.Queues,
            Durable = options.Durable,
            MaxRequestBodySize = options.MaxRequestBodySize,
            HttpsCertificate = options.Https is null ? null
                : X509CertificateLoader.LoadPkcs12FromFile(DevTools.IssueServerCertificate(dataDirectory), password: null),
            ClientCertificates = options.Https ?? ClientCertificateMode.NoCertificate,
            QueueMessageLease = TimeSpan.FromSeconds(30),
            // SERVERLESS_HOST_TEST_LOG=1 prints the host's and the worker's log (for a failing test).
            LoggerFactory = Environment.GetEnvironmentVariable("SERVERLESS_HOST_TEST_LOG") == "1"
                ? LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Information).AddSimpleConsole(c => c.SingleLine = true))
                : LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning)),
        });
    }

    /// <summary>The app's stores, audit log and key vault over its data directory, as the app registers them.</summary>
    private static ServiceProvider OpenServices(string dataDirectory, IReadOnlyDictionary<string, string>? appSettings)
    {
        var values = new Dictionary<string, string?>
        {
            [AppStorage.DataDirectorySetting] = dataDirectory,
            [AppStorage.BackendSetting] = "embedded",
        };
        // The same stores the app settled on (Azurite when the test gave the app an AzureWebJobsStorage).
        foreach (var key in new[] { AppStorage.BackendSetting, AppStorage.ConnectionSetting })
            if (appSettings?.TryGetValue(key, out var value) == true) values[key] = value;
        var settings = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(TimeProvider.System);
        services.AddAppStorage(settings);
        services.AddSecurityServices();
        services.AddInference(settings);
        services.AddFederations();
        return services.BuildServiceProvider();
    }

    /// <summary>A client of the host; over HTTPS it trusts the dev CA and presents <paramref name="clientCertificate"/> when given.</summary>
    public HttpClient CreateClient(X509Certificate2? clientCertificate = null)
    {
        HttpMessageHandler handler = _options.Https is null
            ? new SocketsHttpHandler()
            : MutualTls.CreateClientHandler(new CertificateTrust(X509CertificateLoader.LoadCertificateFromFile(Path.Combine(DataDirectory, "dev-ca", "ca.pem"))), clientCertificate);
        return new HttpClient(handler) { BaseAddress = _host.HttpAddress, Timeout = TimeSpan.FromMinutes(3) };
    }

    private static string Metadata(string key) =>
        typeof(FunctionAppHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _host.DisposeAsync();
        if (_services is not null) await _services.DisposeAsync();
        if (_ownsDataDirectory)
        {
            try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
