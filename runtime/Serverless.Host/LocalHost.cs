using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using System.Security.Authentication;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Serverless.Host.Durable;
using Serverless.Host.Http;
using Serverless.Host.Queues;
using Serverless.Host.Timers;

namespace Serverless.Host;

/// <summary>What the local host runs and where it listens.</summary>
public sealed record LocalHostOptions
{
    /// <summary>The isolated-worker app's build output (holds worker.config.json, functions.metadata, host.json).</summary>
    public required string AppDirectory { get; init; }

    /// <summary>The address HTTP triggers listen on (default loopback).</summary>
    public IPAddress HttpAddress { get; init; } = IPAddress.Loopback;

    /// <summary>
    /// When set, HTTP triggers are served over HTTPS with this server certificate (with its private key), as
    /// the Functions front end terminates TLS in Azure; null serves plain HTTP, as Core Tools does.
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? HttpsCertificate { get; init; }

    /// <summary>
    /// Whether HTTPS asks callers for a TLS client certificate, as the Functions front end's client-certificate
    /// mode does (NoCertificate: clientCertEnabled false; AllowCertificate: Optional; RequireCertificate: Required).
    /// Like the front end, the host does not judge the certificate: it forwards it to the app as
    /// <see cref="Http.ClientCertificateHeader.Name"/> (base64 DER), and the app validates it.
    /// </summary>
    public ClientCertificateMode ClientCertificates { get; init; }

    /// <summary>The HTTP port; 0 picks a free one (see <see cref="LocalHost.HttpAddress"/>).</summary>
    public int HttpPort { get; init; } = 7071;

    public required FunctionKeys Keys { get; init; }

    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    /// <summary>Where the embedded stores live (queues.db); default ./.serverless-data, as the old runtime.</summary>
    public string DataDirectory { get; init; } = ".serverless-data";

    /// <summary>The queues triggers and outputs use; null opens the embedded queue in <see cref="DataDirectory"/>.</summary>
    public IQueueStore? Queues { get; init; }

    /// <summary>
    /// How long a received queue message stays hidden while its function runs (renewed at half of it). The
    /// Functions host uses 10 minutes; a shorter lease brings a message back sooner after a crash.
    /// </summary>
    public TimeSpan QueueMessageLease { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The largest request body HTTP triggers take (413 above it); null: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT,
    /// else 100 MiB, as the Functions host.
    /// </summary>
    public long? MaxRequestBodySize { get; init; }

    /// <summary>
    /// The durable task hub store; null picks it from host.json <c>extensions.durableTask.storageProvider</c>
    /// (the host then owns and disposes it). Only used when the app has durable functions.
    /// </summary>
    public DurableBackend? Durable { get; init; }

    /// <summary>How long the worker may take from process start to all functions loaded.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>App settings over local.settings.json's Values and the environment (%NAME% expressions, connections).</summary>
    public IReadOnlyDictionary<string, string>? Settings { get; init; }

    /// <summary>The clock timer triggers follow (tests move it).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The first wait before a worker that exited is restarted (doubling to 30 s while it keeps failing).</summary>
    public TimeSpan WorkerRestartDelay { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The local Functions host: a gRPC server on loopback (HTTP/2 cleartext) for the worker protocol, the
/// worker process, and the trigger listeners. Start order follows the Functions host: the gRPC server
/// listens first (the worker connects at once), then StartStream, WorkerInitRequest,
/// FunctionsMetadataRequest (worker indexing) and one FunctionLoadRequest per function.
/// </summary>
public sealed class LocalHost : IAsyncDisposable
{
    private readonly WebApplication _rpcServer;
    private readonly WorkerSupervisor _worker;
    private readonly WebApplication _httpServer;
    private readonly WorkerChannel _channel;
    private readonly Listeners _listeners;
    private readonly DurableHost? _durable;

    private LocalHost(WebApplication rpcServer, WorkerSupervisor worker, WorkerChannel channel, WebApplication httpServer, Listeners listeners,
        IReadOnlyList<FunctionDescriptor> functions, Uri httpAddress, DurableHost? durable)
    {
        _durable = durable;
        _rpcServer = rpcServer;
        _worker = worker;
        _channel = channel;
        _httpServer = httpServer;
        _listeners = listeners;
        Functions = functions;
        HttpAddress = httpAddress;
        RpcAddress = new Uri(ListeningAddress(rpcServer));
    }

    /// <summary>Where HTTP triggers are served, e.g. http://127.0.0.1:7071/.</summary>
    public Uri HttpAddress { get; }

    /// <summary>
    /// The loopback gRPC server of the worker channel and the durable sidecar (TaskHubSidecarService): where a
    /// Microsoft.DurableTask gRPC client on this machine manages the app's orchestrations, as a durableClient binding does.
    /// </summary>
    public Uri RpcAddress { get; }

    /// <summary>The function names the worker indexed.</summary>
    public IReadOnlyList<string> FunctionNames => Functions.Select(f => f.Name).ToArray();

    /// <summary>The current worker process (it changes when the worker is restarted).</summary>
    public int WorkerProcessId => _worker.ProcessId;

    /// <summary>How many times the worker process exited and was restarted.</summary>
    public int WorkerRestarts => _worker.Restarts;

    /// <summary>The durable task hub store, when the app has durable functions.</summary>
    public DurableBackend? DurableBackend => _durable?.Backend;

    internal IReadOnlyList<FunctionDescriptor> Functions { get; }

    public static async Task<LocalHost> StartAsync(LocalHostOptions options, CancellationToken cancel = default)
    {
        string appDirectory = Path.GetFullPath(options.AppDirectory);
        if (!Directory.Exists(appDirectory))
        {
            throw new HostStartException($"{appDirectory}: no such directory");
        }
        HostJson hostJson = HostJson.Read(appDirectory);
        ILogger log = options.LoggerFactory.CreateLogger("Serverless.Host");
        var channel = new WorkerChannel(Guid.NewGuid().ToString(), options.LoggerFactory);

        var durableSlot = new DurableSidecarSlot();
        WebApplication rpcServer = BuildRpcServer(channel, options.LoggerFactory, durableSlot);
        await rpcServer.StartAsync(cancel);
        WorkerSupervisor? worker = null;
        WebApplication? httpServer = null;
        DurableHost? durable = null;
        try
        {
            Uri rpcUri = new(ListeningAddress(rpcServer));
            // The app finds the host's data directory (its embedded queue is the host's) in SERVERLESS_DATA_DIR.
            var explicitSettings = new Dictionary<string, string>(options.Settings ?? new Dictionary<string, string>(), StringComparer.OrdinalIgnoreCase);
            explicitSettings.TryAdd(DataDirectorySetting, Path.GetFullPath(options.DataDirectory));
            AppSettings settings = AppSettings.Load(appDirectory, explicitSettings);
            worker = await WorkerSupervisor.StartAsync(appDirectory, rpcUri, channel, settings.Values, options.StartTimeout, options.WorkerRestartDelay,
                options.LoggerFactory, cancel);
            IReadOnlyList<FunctionDescriptor> functions = worker.Functions;

            IQueueStore? queues = options.Queues;
            IDisposable? ownedQueues = null;
            if (queues is null && functions.Any(f => f.Bindings.Any(b => b.Type.StartsWith("queue", StringComparison.OrdinalIgnoreCase))))
            {
                queues = Stores.OpenEmbeddedQueues(Path.Combine(options.DataDirectory, "queues.db"));
                ownedQueues = queues as IDisposable;
            }
            durable = await DurableHost.StartAsync(options.Durable, appDirectory, options.DataDirectory, durableSlot, rpcUri, channel, functions, options.Keys, options.LoggerFactory);
            httpServer = BuildHttpServer(options, channel, functions, hostJson, queues, worker.HttpProxy, durable, log);
            await httpServer.StartAsync(cancel);
            durable?.OnHttpListening(new Uri(ListeningAddress(httpServer)));
            Listeners listeners = Listeners.Start(options, channel, functions, hostJson, queues, ownedQueues, settings, log);
            return new LocalHost(rpcServer, worker, channel, httpServer, listeners, functions, new Uri(ListeningAddress(httpServer)), durable);
        }
        catch
        {
            if (durable is not null)
            {
                await durable.DisposeAsync();
            }
            if (httpServer is not null)
            {
                await httpServer.DisposeAsync();
            }
            if (worker is not null)
            {
                await worker.DisposeAsync();
            }
            await rpcServer.DisposeAsync();
            throw;
        }
    }

    private static WebApplication BuildRpcServer(WorkerChannel channel, ILoggerFactory loggers, DurableSidecarSlot durable)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(loggers);
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(grpc =>
        {
            // The worker is told it may send int.MaxValue bytes (--functions-grpc-max-message-length).
            grpc.MaxReceiveMessageSize = int.MaxValue;
            grpc.MaxSendMessageSize = int.MaxValue;
        });
        builder.Services.AddSingleton(channel);
        DurableHost.AddSidecar(builder.Services, durable);
        WebApplication app = builder.Build();
        app.MapGrpcService<FunctionRpcService>();
        // The durableClient binding's TaskHubSidecarService shares this loopback HTTP/2 server.
        DurableHost.MapSidecar(app);
        return app;
    }

    private static WebApplication BuildHttpServer(LocalHostOptions options, WorkerChannel channel, IReadOnlyList<FunctionDescriptor> functions, HostJson hostJson,
        IQueueStore? queues, WorkerHttpProxy? httpProxy, DurableHost? durable, ILogger log)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(options.LoggerFactory);
        long maxBody = HostProblems.MaxRequestBodySize(options.MaxRequestBodySize);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(options.HttpAddress, options.HttpPort, listen =>
            {
                if (options.HttpsCertificate is { } certificate)
                {
                    listen.UseHttps(https =>
                    {
                        https.ServerCertificate = certificate;
                        // TLS 1.3 (RFC 8446), 1.2 (RFC 5246) as the floor, as the Functions front end's minimum TLS setting allows.
                        https.SslProtocols = SslProtocols.Tls13 | SslProtocols.Tls12;
                        https.ClientCertificateMode = options.ClientCertificates;
                        if (options.ClientCertificates != ClientCertificateMode.NoCertificate)
                        {
                            https.AllowAnyClientCertificate();   // the app's certificate handler decides, behind the front end as here
                        }
                    });
                }
            });
            kestrel.Limits.MaxRequestBodySize = maxBody;
        });
        WebApplication app = builder.Build();
        HostProblems.Use(app);
        var http = new HttpTriggers(channel, options.Keys, queues, log,
            httpProxy is null ? null : new ProxiedHttpInvoker(channel, httpProxy, queues, log)); // the supervisor owns the proxy
        foreach (FunctionDescriptor function in functions)
        {
            BindingDescriptor trigger = function.Trigger!;
            if (trigger.Type.Equals("httpTrigger", StringComparison.OrdinalIgnoreCase))
            {
                http.Map(app, function, trigger, hostJson.HttpRoutePrefix);
            }
            else if (!trigger.Type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase) && !trigger.Type.Equals("timerTrigger", StringComparison.OrdinalIgnoreCase)
                && !DurableBridge.IsDurable(function))
            {
                Logs.TriggerNotSupported(log, function.Name, trigger.Type);
            }
        }
        durable?.MapHttp(app);
        return app;
    }

    private static string ListeningAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";

    /// <summary>The app setting that tells the app where the host keeps its data (unless the settings name it already).</summary>
    public const string DataDirectorySetting = "SERVERLESS_DATA_DIR";

    /// <summary>The version sent in WorkerInitRequest: the Functions host major version this host imitates.</summary>
    internal const string HostVersion = "4.1040.0";

    public async ValueTask DisposeAsync()
    {
        // Listeners first: an invocation they cancel hands its message back before the worker goes.
        await _listeners.StopAsync();
        await _httpServer.DisposeAsync();
        // The engine stops before the worker goes, so no work item is cut by a missing worker.
        if (_durable is not null)
        {
            await _durable.DisposeAsync();
        }
        await _worker.DisposeAsync();
        _channel.Stop(new WorkerUnavailableException("The host stopped."));
        await _rpcServer.DisposeAsync();
    }
}

/// <summary>The host.json settings this host reads so far (the rest is the worker's or later phases').</summary>
internal sealed record HostJson(string HttpRoutePrefix, QueueOptions Queues)
{
    public static HostJson Read(string appDirectory)
    {
        string path = Path.Combine(appDirectory, "host.json");
        if (!File.Exists(path))
        {
            return new HostJson("api", new QueueOptions());
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            JsonElement root = document.RootElement;
            if (!root.TryGetProperty("version", out JsonElement version) || version.GetString() != "2.0")
            {
                throw new HostStartException("host.json: version must be \"2.0\"");
            }
            string prefix = "api";
            if (root.TryGetProperty("extensions", out JsonElement extensions)
                && extensions.TryGetProperty("http", out JsonElement http)
                && http.TryGetProperty("routePrefix", out JsonElement routePrefix))
            {
                prefix = routePrefix.GetString() ?? "api";
            }
            QueueOptions queues = new();
            if (root.TryGetProperty("extensions", out extensions)
                && extensions.TryGetProperty("queues", out JsonElement queuesSection) && queuesSection.ValueKind == JsonValueKind.Object)
            {
                queues = QueueOptions.Parse(queuesSection);
            }
            return new HostJson(prefix.Trim('/'), queues);
        }
        // InvalidOperationException: JsonElement's answer to a value of the wrong kind or a string with a lone surrogate (found by fuzzing).
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new HostStartException($"host.json: {e.Message}");
        }
    }
}

/// <summary>The non-HTTP trigger listeners (queues and timers), run until the host stops.</summary>
internal sealed class Listeners
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];
    private IDisposable? _ownedQueues;

    public static Listeners Start(LocalHostOptions options, WorkerChannel channel, IReadOnlyList<FunctionDescriptor> functions, HostJson hostJson,
        IQueueStore? queues, IDisposable? ownedQueues, AppSettings settings, ILogger log)
    {
        var listeners = new Listeners { _ownedQueues = ownedQueues };
        foreach (FunctionDescriptor function in functions)
        {
            BindingDescriptor trigger = function.Trigger!;
            if (trigger.Type.Equals("timerTrigger", StringComparison.OrdinalIgnoreCase))
            {
                TimerTriggerListener timer = TimerTriggers.Create(function, trigger, settings, options.DataDirectory, channel, queues, options.Time, log);
                listeners._running.Add(Task.Run(() => timer.RunAsync(listeners._stopping.Token)));
                continue;
            }
            if (!trigger.Type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            string queue = settings.Resolve(function.Name, trigger.GetString("queueName"))
                ?? throw new HostStartException($"function {function.Name}: the queue trigger has no queueName");
            var listener = new QueueTriggerListener(function, trigger, queue, queues!, channel, hostJson.Queues, options.QueueMessageLease, log);
            listeners._running.Add(Task.Run(() => listener.RunAsync(listeners._stopping.Token)));
            Logs.QueueTrigger(log, function.Name, queue);
        }
        return listeners;
    }

    public async Task StopAsync()
    {
        await _stopping.CancelAsync();
        try
        {
            await Task.WhenAll(_running);
        }
        catch (OperationCanceledException)
        {
        }
        _ownedQueues?.Dispose();
        _stopping.Dispose();
    }
}
