using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serverless.Host.Durable;
using Serverless.Host.Functions;
using Serverless.Host.Http;
using Serverless.Host.Queues;
using Serverless.Host.Rpc;
using Serverless.Runtime.Storage;
using Serverless.Host.Worker;

namespace Serverless.Host;

/// <summary>What the local host runs and where it listens.</summary>
public sealed record LocalHostOptions
{
    /// <summary>The isolated-worker app's build output (holds worker.config.json, functions.metadata, host.json).</summary>
    public required string AppDirectory { get; init; }

    /// <summary>The address HTTP triggers listen on (default loopback).</summary>
    public IPAddress HttpAddress { get; init; } = IPAddress.Loopback;

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
    /// The durable task hub store; null picks it from host.json <c>extensions.durableTask.storageProvider</c>
    /// (the host then owns and disposes it). Only used when the app has durable functions.
    /// </summary>
    public DurableBackend? Durable { get; init; }

    /// <summary>How long the worker may take from process start to all functions loaded.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromMinutes(2);
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
    private readonly WorkerProcess _worker;
    private readonly WebApplication _httpServer;
    private readonly WorkerChannel _channel;
    private readonly Listeners _listeners;
    private readonly DurableHost? _durable;

    private LocalHost(WebApplication rpcServer, WorkerProcess worker, WorkerChannel channel, WebApplication httpServer, Listeners listeners,
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
    }

    /// <summary>Where HTTP triggers are served, e.g. http://127.0.0.1:7071/.</summary>
    public Uri HttpAddress { get; }

    /// <summary>The function names the worker indexed.</summary>
    public IReadOnlyList<string> FunctionNames => Functions.Select(f => f.Name).ToArray();

    /// <summary>The durable task hub store, when the app has durable functions.</summary>
    public DurableBackend? DurableBackend => _durable?.Backend;

    /// <summary>Completes when the worker process exits.</summary>
    public Task WorkerExited => _worker.Exited;

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
        WorkerProcess? worker = null;
        WebApplication? httpServer = null;
        DurableHost? durable = null;
        try
        {
            Uri rpcUri = new(ListeningAddress(rpcServer));
            worker = WorkerProcess.Start(appDirectory, rpcUri, channel.WorkerId, options.LoggerFactory.CreateLogger("Worker.Process"));

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(options.StartTimeout);
            IReadOnlyList<FunctionDescriptor> functions = await InitializeWorkerAsync(channel, worker, appDirectory, log, timeout.Token);

            IQueueStore? queues = options.Queues;
            IDisposable? ownedQueues = null;
            if (queues is null && functions.Any(f => f.Bindings.Any(b => b.Type.StartsWith("queue", StringComparison.OrdinalIgnoreCase))))
            {
                queues = Stores.OpenEmbeddedQueues(Path.Combine(options.DataDirectory, "queues.db"));
                ownedQueues = queues as IDisposable;
            }
            durable = await DurableHost.StartAsync(options.Durable, appDirectory, options.DataDirectory, durableSlot, rpcUri, channel, functions, options.Keys, options.LoggerFactory);
            httpServer = BuildHttpServer(options, channel, functions, hostJson, queues, durable, log);
            await httpServer.StartAsync(cancel);
            durable?.OnHttpListening(new Uri(ListeningAddress(httpServer)));
            Listeners listeners = Listeners.Start(options, channel, functions, hostJson, queues, ownedQueues, log);
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

    private static async Task<IReadOnlyList<FunctionDescriptor>> InitializeWorkerAsync(
        WorkerChannel channel, WorkerProcess worker, string appDirectory, ILogger log, CancellationToken cancel)
    {
        // The worker may die before it connects (a missing runtime, a bad app): fail with that, not a timeout.
        Task connectedOrExited = await Task.WhenAny(channel.Connected, worker.Exited, Task.Delay(Timeout.Infinite, cancel));
        if (connectedOrExited != channel.Connected)
        {
            throw new HostStartException(worker.HasExited
                ? "the worker process exited before it connected (see its output above)"
                : "the worker did not connect in time");
        }

        StreamingMessage init = await AwaitStartupReply(channel, worker, CorrelationKeys.Init, new StreamingMessage
        {
            RequestId = Guid.NewGuid().ToString(),
            WorkerInitRequest = new WorkerInitRequest
            {
                HostVersion = HostVersion,
                WorkerDirectory = appDirectory,
                FunctionAppDirectory = appDirectory,
            },
        }, cancel);
        RequireSuccess("WorkerInitRequest", init.WorkerInitResponse.Result);

        StreamingMessage metadata = await AwaitStartupReply(channel, worker, CorrelationKeys.Metadata, new StreamingMessage
        {
            RequestId = Guid.NewGuid().ToString(),
            FunctionsMetadataRequest = new FunctionsMetadataRequest { FunctionAppDirectory = appDirectory },
        }, cancel);
        FunctionMetadataResponse indexed = metadata.FunctionMetadataResponse;
        IReadOnlyList<RpcFunctionMetadata> found = indexed.UseDefaultMetadataIndexing
            ? FunctionDescriptor.ReadMetadataFile(appDirectory)
            : RequireIndexed(indexed);

        var functions = found.Select(f => FunctionDescriptor.From(f, appDirectory)).ToList();
        var duplicate = functions.GroupBy(f => f.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new HostStartException($"two functions are named {duplicate.Key}");
        }

        // Loads go out together; the worker answers each by function id, in any order.
        await Task.WhenAll(functions.Select(async function =>
        {
            StreamingMessage loaded = await AwaitStartupReply(channel, worker, CorrelationKeys.Load(function.Id), new StreamingMessage
            {
                RequestId = Guid.NewGuid().ToString(),
                FunctionLoadRequest = new FunctionLoadRequest { FunctionId = function.Id, Metadata = function.Metadata },
            }, cancel);
            RequireSuccess($"FunctionLoadRequest for {function.Name}", loaded.FunctionLoadResponse.Result);
            Logs.FunctionLoaded(log, function.Name, function.Trigger?.Type ?? "none");
        }));
        return functions;
    }

    private static async Task<StreamingMessage> AwaitStartupReply(WorkerChannel channel, WorkerProcess worker, string key, StreamingMessage request, CancellationToken cancel)
    {
        Task<StreamingMessage> reply = channel.SendAsync(key, request, cancel);
        if (await Task.WhenAny(reply, worker.Exited) != reply)
        {
            throw new HostStartException($"the worker process exited during {request.ContentCase} (see its output above)");
        }
        try
        {
            return await reply;
        }
        catch (OperationCanceledException)
        {
            throw new HostStartException($"the worker did not answer {request.ContentCase} in time");
        }
    }

    private static IReadOnlyList<RpcFunctionMetadata> RequireIndexed(FunctionMetadataResponse response)
    {
        RequireSuccess("FunctionsMetadataRequest", response.Result);
        return response.FunctionMetadataResults;
    }

    private static void RequireSuccess(string step, StatusResult? result)
    {
        if (result is null || result.Status != StatusResult.Types.Status.Success)
        {
            string why = result?.Exception?.Message is { Length: > 0 } message ? message.Split('\n')[0] : "no reason given";
            throw new HostStartException($"the worker refused {step}: {why}");
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
        IQueueStore? queues, DurableHost? durable, ILogger log)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(options.LoggerFactory);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(options.HttpAddress, options.HttpPort));
        WebApplication app = builder.Build();
        var http = new HttpTriggers(channel, options.Keys, queues, log);
        foreach (FunctionDescriptor function in functions)
        {
            BindingDescriptor trigger = function.Trigger!;
            if (trigger.Type.Equals("httpTrigger", StringComparison.OrdinalIgnoreCase))
            {
                http.Map(app, function, trigger, hostJson.HttpRoutePrefix);
            }
            else if (!trigger.Type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase) && !DurableBridge.IsDurable(function))
            {
                Logs.TriggerNotSupported(log, function.Name, trigger.Type);
            }
        }
        durable?.MapHttp(app);
        return app;
    }

    private static string ListeningAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";

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
        _channel.Close(new WorkerUnavailableException("The host stopped."));
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
        catch (JsonException e)
        {
            throw new HostStartException($"host.json: {e.Message}");
        }
    }
}

/// <summary>The non-HTTP trigger listeners (queues so far), run until the host stops.</summary>
internal sealed class Listeners
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];
    private IDisposable? _ownedQueues;

    public static Listeners Start(LocalHostOptions options, WorkerChannel channel, IReadOnlyList<FunctionDescriptor> functions, HostJson hostJson,
        IQueueStore? queues, IDisposable? ownedQueues, ILogger log)
    {
        var listeners = new Listeners { _ownedQueues = ownedQueues };
        foreach (FunctionDescriptor function in functions)
        {
            BindingDescriptor trigger = function.Trigger!;
            if (!trigger.Type.Equals("queueTrigger", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            string queue = ResolveSetting(trigger.GetString("queueName"))
                ?? throw new HostStartException($"function {function.Name}: the queue trigger has no queueName");
            var listener = new QueueTriggerListener(function, trigger, queue, queues!, channel, hostJson.Queues, options.QueueMessageLease, log);
            listeners._running.Add(Task.Run(() => listener.RunAsync(listeners._stopping.Token)));
            Logs.QueueTrigger(log, function.Name, queue);
        }
        return listeners;
    }

    /// <summary>A %NAME% binding expression is an app setting (an environment variable here).</summary>
    private static string? ResolveSetting(string? value) =>
        value is { Length: > 2 } && value[0] == '%' && value[^1] == '%'
            ? Environment.GetEnvironmentVariable(value[1..^1])
            : value;

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
