using Serverless.Host.Http;

namespace Serverless.Host.Worker;

/// <summary>
/// Keeps one worker process running. The first start is the host's start: it indexes the functions, and a
/// failure is a <see cref="HostStartException"/>. When the worker exits later, its stream is closed (its
/// in-flight invocations fail over: HTTP answers 503, a queue message is handed back), and a new worker is
/// started after a back-off (doubling from <see cref="LocalHostOptions.WorkerRestartDelay"/> to 30 s, back to
/// the start after a minute of healthy running), initialized and loaded with the same function ids, so
/// the triggers keep their descriptors. Until it is ready, invocations wait in <see cref="WorkerChannel"/>.
/// </summary>
internal sealed class WorkerSupervisor : IAsyncDisposable
{
    private static readonly TimeSpan MaxRestartDelay = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan HealthyRun = TimeSpan.FromMinutes(1);

    private readonly string _appDirectory;
    private readonly Uri _rpcUri;
    private readonly WorkerChannel _channel;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly TimeSpan _startTimeout;
    private readonly TimeSpan _firstRestartDelay;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private WorkerProcess _process;
    private Task _supervising = Task.CompletedTask;
    private int _restarts;

    private WorkerSupervisor(string appDirectory, Uri rpcUri, WorkerChannel channel, IReadOnlyDictionary<string, string> environment,
        TimeSpan startTimeout, TimeSpan firstRestartDelay, ILoggerFactory loggers, WorkerProcess process, IReadOnlyList<FunctionDescriptor> functions,
        WorkerHttpProxy? httpProxy)
    {
        HttpProxy = httpProxy;
        _appDirectory = appDirectory;
        _rpcUri = rpcUri;
        _channel = channel;
        _environment = environment;
        _startTimeout = startTimeout;
        _firstRestartDelay = firstRestartDelay;
        _loggers = loggers;
        _log = loggers.CreateLogger("Serverless.Host");
        _process = process;
        Functions = functions;
    }

    public IReadOnlyList<FunctionDescriptor> Functions { get; }

    /// <summary>
    /// Where HTTP-trigger requests go when the worker runs the ASP.NET Core integration (null: RpcHttp). The
    /// capability of the first start decides for the host's lifetime; a restarted worker's server is retargeted.
    /// </summary>
    public WorkerHttpProxy? HttpProxy { get; }

    /// <summary>The current worker's process id (a test kills it to check fail-over).</summary>
    public int ProcessId => Volatile.Read(ref _process).Id;

    /// <summary>How many times the worker has been restarted.</summary>
    public int Restarts => Volatile.Read(ref _restarts);

    public static async Task<WorkerSupervisor> StartAsync(string appDirectory, Uri rpcUri, WorkerChannel channel, IReadOnlyDictionary<string, string> environment,
        TimeSpan startTimeout, TimeSpan firstRestartDelay, ILoggerFactory loggers, CancellationToken cancel)
    {
        ILogger log = loggers.CreateLogger("Serverless.Host");
        WorkerProcess process = WorkerProcess.Start(appDirectory, rpcUri, channel.WorkerId, environment, loggers.CreateLogger("Worker.Process"));
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(startTimeout);
            (IReadOnlyList<FunctionDescriptor> functions, IReadOnlyDictionary<string, string> capabilities) =
                await InitializeAsync(channel, process, appDirectory, known: null, log, timeout.Token);
            // The capability decides, as in the Functions host: HttpUri means the ASP.NET Core integration.
            WorkerHttpProxy? httpProxy = WorkerHttpProxy.FromCapabilities(capabilities);
            Logs.HttpIntegration(log, httpProxy is null ? "RpcHttp" : "ASP.NET Core integration", httpProxy?.Worker.ToString() ?? "no HttpUri capability");
            channel.MarkReady();
            var supervisor = new WorkerSupervisor(appDirectory, rpcUri, channel, environment, startTimeout, firstRestartDelay, loggers, process, functions, httpProxy);
            supervisor._supervising = Task.Run(supervisor.SuperviseAsync);
            return supervisor;
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    private async Task SuperviseAsync()
    {
        CancellationToken stopping = _stopping.Token;
        TimeSpan delay = _firstRestartDelay;
        DateTime started = DateTime.UtcNow;
        while (true)
        {
            WorkerProcess process = _process;
            try
            {
                await process.Exited.WaitAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (DateTime.UtcNow - started >= HealthyRun)
            {
                delay = _firstRestartDelay;
            }
            Logs.WorkerExitedRestarting(_log, process.Id, process.ExitCode, delay.TotalSeconds);
            // Fails the dead worker's in-flight requests now; its stream may take a moment to notice.
            _channel.Begin(Guid.NewGuid().ToString());
            await process.DisposeAsync();
            while (true)
            {
                try
                {
                    await Task.Delay(delay, stopping);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRestartDelay.Ticks));
                started = DateTime.UtcNow;
                WorkerProcess next;
                try
                {
                    next = WorkerProcess.Start(_appDirectory, _rpcUri, _channel.WorkerId, _environment, _loggers.CreateLogger("Worker.Process"));
                }
                catch (HostStartException e)
                {
                    Logs.WorkerRestartFailed(_log, e.Message);
                    continue;
                }
                Volatile.Write(ref _process, next);
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    timeout.CancelAfter(_startTimeout);
                    (_, IReadOnlyDictionary<string, string> capabilities) = await InitializeAsync(_channel, next, _appDirectory, Functions, _log, timeout.Token);
                    RetargetHttp(capabilities);
                    Interlocked.Increment(ref _restarts);
                    _channel.MarkReady();
                    Logs.WorkerRestarted(_log, next.Id);
                    break;
                }
                catch (Exception e) when (e is HostStartException or WorkerUnavailableException or OperationCanceledException)
                {
                    if (stopping.IsCancellationRequested)
                    {
                        return;
                    }
                    Logs.WorkerRestartFailed(_log, e.Message);
                    _channel.Begin(Guid.NewGuid().ToString());
                    await next.DisposeAsync();
                }
            }
        }
    }

    /// <summary>
    /// StartStream (waited for), WorkerInitRequest, FunctionsMetadataRequest (worker indexing) and one
    /// FunctionLoadRequest per function. On a restart (<paramref name="known"/> set) the worker must index
    /// the same functions, and they are loaded with the ids the triggers already hold.
    /// </summary>
    private void RetargetHttp(IReadOnlyDictionary<string, string> capabilities)
    {
        if (HttpProxy is null)
        {
            if (WorkerHttpProxy.FromCapabilities(capabilities) is { } changed)
            {
                changed.Dispose();
                throw new HostStartException("the restarted worker changed its HTTP integration (restart the host after a rebuild)");
            }
            return;
        }
        HttpProxy.Retarget(capabilities);
    }

    private static async Task<(IReadOnlyList<FunctionDescriptor>, IReadOnlyDictionary<string, string>)> InitializeAsync(
        WorkerChannel channel, WorkerProcess worker, string appDirectory, IReadOnlyList<FunctionDescriptor>? known, ILogger log, CancellationToken cancel)
    {
        // The worker may die before it connects (a missing runtime, a bad app): fail with that, not a timeout.
        Task connected = channel.Connected;
        Task connectedOrExited = await Task.WhenAny(connected, worker.Exited, Task.Delay(Timeout.Infinite, cancel));
        if (connectedOrExited != connected || !connected.IsCompletedSuccessfully)
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
                HostVersion = LocalHost.HostVersion,
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

        IReadOnlyList<FunctionDescriptor> functions;
        if (known is null)
        {
            var fresh = found.Select(f => FunctionDescriptor.From(f, appDirectory)).ToList();
            var duplicate = fresh.GroupBy(f => f.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
            {
                throw new HostStartException($"two functions are named {duplicate.Key}");
            }
            functions = fresh;
        }
        else
        {
            // The build output is the same, so the functions are; a changed app needs a host restart.
            var names = found.Select(f => f.Name).Order(StringComparer.OrdinalIgnoreCase);
            if (!names.SequenceEqual(known.Select(f => f.Name).Order(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase))
            {
                throw new HostStartException("the restarted worker indexed other functions than the first (restart the host after a rebuild)");
            }
            functions = known;
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
            if (known is null)
            {
                Logs.FunctionLoaded(log, function.Name, function.Trigger?.Type ?? "none");
            }
        }));
        return (functions, init.WorkerInitResponse.Capabilities);
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

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _supervising;
        await Volatile.Read(ref _process).DisposeAsync();
        HttpProxy?.Dispose();
        _stopping.Dispose();
    }
}
