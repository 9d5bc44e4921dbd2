using Microsoft.Extensions.Logging;
using Serverless.Host.Durable;
using Serverless.Host.Http;
using Serverless.Testing;

namespace Serverless.Host.Tests.Durable;

/// <summary>
/// The real sample app under the local host on one durable backend, shared by a conformance class.
/// Each backend gets its own host (and worker process), so the two runs of a case never share state.
/// </summary>
public abstract class DurableAppHost : IAsyncLifetime
{
    public const string MasterKey = "durable-master-key-for-tests-01";

    private LocalHost? _host;
    private DurableBackend? _backend;
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("serverless-durable-tests-").FullName;

    public HttpClient Client { get; private set; } = null!;

    public DurableBackend Backend => _backend!;

    protected ILoggerFactory Loggers { get; } = Environment.GetEnvironmentVariable("SERVERLESS_HOST_TEST_LOG") == "1"
        ? LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Information).AddSimpleConsole(c => c.SingleLine = true))
        : LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning));

    protected string DataDirectory => _dataDirectory;

    protected abstract Task<DurableBackend> CreateBackendAsync();

    public async Task InitializeAsync()
    {
        _backend = await CreateBackendAsync();
        _host = await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = SampleAppHost.AppDirectory,
            DataDirectory = _dataDirectory,
            HttpPort = 0,
            Keys = new FunctionKeys(MasterKey, [], new Dictionary<string, IReadOnlyCollection<string>>()),
            Durable = _backend,
            LoggerFactory = Loggers,
        });
        Client = new HttpClient { BaseAddress = _host.HttpAddress, Timeout = TimeSpan.FromMinutes(2) };
    }

    public virtual async Task DisposeAsync()
    {
        Client.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        if (_backend is not null)
        {
            await DeleteBackendAsync(_backend);
            await _backend.DisposeAsync();
        }
        Loggers.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    protected virtual Task DeleteBackendAsync(DurableBackend backend) => Task.CompletedTask;
}

/// <summary>The embedded default: the SQLite task hub (runtime/Serverless.TaskHub.Sqlite) in the host's data directory.</summary>
public sealed class SqliteDurableHost : DurableAppHost
{
    protected override Task<DurableBackend> CreateBackendAsync() => DurableBackend.SqliteAsync(Path.Combine(DataDirectory, "durable.db"));
}

/// <summary>DurableTask.AzureStorage against Azurite (from scripts/test.sh); a fresh task hub per run.</summary>
public sealed class AzuriteDurableHost : DurableAppHost
{
    protected override Task<DurableBackend> CreateBackendAsync() =>
        DurableBackend.AzureStorageAsync(TestServers.AzuriteConnectionString, "t" + Guid.NewGuid().ToString("N")[..12], Loggers,
            maxQueuePollingInterval: TimeSpan.FromMilliseconds(500));

    protected override Task DeleteBackendAsync(DurableBackend backend) => backend.Service.DeleteAsync();
}

/// <summary>
/// One host per backend, started on first use and shared by the conformance cases. The backends a run
/// covers: the embedded one always, Azurite unless SERVERLESS_TESTS_LOCAL_ONLY=1 (then a missing Azurite
/// is an explicit opt-out; without it, a missing Azurite fails the Azurite cases).
/// </summary>
public sealed class DurableHosts : IAsyncLifetime
{
    public const string Embedded = "embedded";
    public const string Azurite = "azurite";

    private readonly Dictionary<string, Task<DurableAppHost>> _started = new();
    private readonly object _gate = new();

    public static TheoryData<string> Backends()
    {
        var backends = new TheoryData<string> { Embedded };
        if (!TestServers.LocalOnly)
        {
            backends.Add(Azurite);
        }
        return backends;
    }

    public Task<DurableAppHost> GetAsync(string backend)
    {
        lock (_gate)
        {
            if (!_started.TryGetValue(backend, out Task<DurableAppHost>? host))
            {
                host = StartAsync(backend);
                _started[backend] = host;
            }
            return host;
        }
    }

    private static async Task<DurableAppHost> StartAsync(string backend)
    {
        DurableAppHost host = backend switch
        {
            Embedded => new SqliteDurableHost(),
            Azurite => new AzuriteDurableHost(),
            _ => throw new ArgumentOutOfRangeException(nameof(backend)),
        };
        await host.InitializeAsync();
        return host;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (Task<DurableAppHost> host in _started.Values)
        {
            if (host.IsCompletedSuccessfully)
            {
                await host.Result.DisposeAsync();
            }
        }
    }
}
