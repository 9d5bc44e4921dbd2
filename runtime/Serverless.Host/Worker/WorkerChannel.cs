using System.Diagnostics;
using System.Collections.Concurrent;
using System.Threading.Channels;

using Serverless.Telemetry;

namespace Serverless.Host.Worker;

/// <summary>
/// The host's side of the worker's EventStream, across worker restarts. Each worker process is one
/// <see cref="Generation"/>: its own outgoing queue, drained by a single writer (gRPC allows one write at
/// a time on a stream), and its own waiting requests, matched to replies by id because the worker answers
/// out of order. When a worker's stream closes, only that generation's requests fail; a stale stream can
/// never fail the next worker's requests. Invocations wait (bounded) until a worker has loaded its
/// functions, so a request that arrives during a restart runs on the next worker instead of failing.
/// </summary>
internal sealed class WorkerChannel
{
    private readonly object _gate = new();
    private readonly ILogger _workerLog;
    private readonly ILogger _log;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Generation _current;
    private TaskCompletionSource<Generation> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public WorkerChannel(string workerId, ILoggerFactory loggers)
    {
        _workerLog = loggers.CreateLogger("Worker");
        _log = loggers.CreateLogger<WorkerChannel>();
        _current = new Generation(workerId);
    }

    /// <summary>How long an invocation waits for a (re)starting worker before it fails with <see cref="WorkerUnavailableException"/>.</summary>
    public TimeSpan ReadyWait { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The id the host gave the current worker on its command line; StartStream must carry it.</summary>
    public string WorkerId => Volatile.Read(ref _current).WorkerId;

    /// <summary>Completes when the current worker has opened the stream and sent StartStream.</summary>
    public Task Connected => Volatile.Read(ref _current).Connected.Task;

    /// <summary>A new worker process is about to start with <paramref name="workerId"/>; the previous one is closed.</summary>
    internal void Begin(string workerId)
    {
        lock (_gate)
        {
            Close(_current, new WorkerUnavailableException("The worker was replaced."));
            _current = new Generation(workerId);
        }
    }

    /// <summary>The stream that presents <paramref name="workerId"/> belongs to the current worker, if it is the first to.</summary>
    internal Generation? Accept(string workerId)
    {
        lock (_gate)
        {
            Generation current = _current;
            if (!string.Equals(current.WorkerId, workerId, StringComparison.Ordinal) || current.Closed is not null || current.Connected.Task.IsCompleted)
            {
                return null;
            }
            current.Connected.TrySetResult();
            return current;
        }
    }

    /// <summary>The current worker has loaded every function: invocations may go to it.</summary>
    internal void MarkReady()
    {
        lock (_gate)
        {
            if (_current.Closed is null)
            {
                _ready.TrySetResult(_current);
            }
        }
    }

    /// <summary>Waits until a worker is ready; fails after <paramref name="wait"/> (infinite allowed) or when the host stops.</summary>
    public async Task<Generation> WaitReadyAsync(TimeSpan wait, CancellationToken cancel)
    {
        Task<Generation> ready;
        lock (_gate)
        {
            ready = _ready.Task;
        }
        if (ready.IsCompletedSuccessfully)
        {
            return ready.Result;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        if (wait != Timeout.InfiniteTimeSpan)
        {
            timeout.CancelAfter(wait);
        }
        try
        {
            Task done = await Task.WhenAny(ready, _stopped.Task, Task.Delay(Timeout.Infinite, timeout.Token));
            if (done == ready)
            {
                return await ready;
            }
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
        }
        cancel.ThrowIfCancellationRequested();
        throw new WorkerUnavailableException(_stopped.Task.IsCompleted ? "The host stopped." : "The worker is restarting.");
    }

    /// <summary>Sends a request and waits for the reply that carries <paramref name="correlationKey"/>.</summary>
    public Task<StreamingMessage> SendAsync(string correlationKey, StreamingMessage request, CancellationToken cancel) =>
        SendAsync(correlationKey, request, ReadyWait, cancel);

    /// <summary>
    /// Sends a request and waits for its reply. An invocation first waits up to <paramref name="readyWait"/>
    /// for a ready worker; startup requests go to the current worker at once.
    /// </summary>
    public async Task<StreamingMessage> SendAsync(string correlationKey, StreamingMessage request, TimeSpan readyWait, CancellationToken cancel)
    {
        if (request.ContentCase == StreamingMessage.ContentOneofCase.FunctionLoadRequest && request.FunctionLoadRequest.Metadata is { } loaded)
            _functions[request.FunctionLoadRequest.FunctionId] = (loaded.Name, loaded.Bindings.Values.FirstOrDefault(b => b.Type.EndsWith("Trigger", StringComparison.OrdinalIgnoreCase))?.Type ?? "");
        if (request.ContentCase != StreamingMessage.ContentOneofCase.InvocationRequest) return await SendCoreAsync(correlationKey, request, readyWait, cancel);
        // Every invocation, whatever its trigger, passes here: one place for the function duration and failure metrics.
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        string outcome = "failed";
        try
        {
            StreamingMessage reply = await SendCoreAsync(correlationKey, request, readyWait, cancel);
            outcome = reply.InvocationResponse?.Result?.Status switch
            {
                StatusResult.Types.Status.Success => "succeeded",
                StatusResult.Types.Status.Cancelled => "cancelled",
                _ => "failed",
            };
            return reply;
        }
        finally
        {
            var (name, trigger) = _functions.TryGetValue(request.InvocationRequest.FunctionId, out var f) ? f : ("", "");
            var tags = new TagList { { "faas.name", name }, { "faas.trigger", trigger }, { "serverless.outcome", outcome } };
            ServerlessTelemetry.FunctionDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            if (outcome == "failed") ServerlessTelemetry.FunctionFailures.Add(1, tags);
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Name, string Trigger)> _functions = new();

    private async Task<StreamingMessage> SendCoreAsync(string correlationKey, StreamingMessage request, TimeSpan readyWait, CancellationToken cancel)
    {
        Generation generation = request.ContentCase == StreamingMessage.ContentOneofCase.InvocationRequest
            ? await WaitReadyAsync(readyWait, cancel)
            : Volatile.Read(ref _current);
        var reply = new TaskCompletionSource<StreamingMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!generation.Pending.TryAdd(correlationKey, reply))
        {
            throw new InvalidOperationException($"A request with key '{correlationKey}' is already waiting for its reply.");
        }
        try
        {
            // Checked after the add: Close marks the generation before it fails what is pending, so one of the two sees the other.
            if (generation.Closed is { } closed || !generation.Outgoing.Writer.TryWrite(request))
            {
                throw new WorkerUnavailableException("The worker's stream is closed.", generation.Closed);
            }
            using (cancel.Register(static state => ((TaskCompletionSource<StreamingMessage>)state!).TrySetCanceled(), reply))
            {
                return await reply.Task;
            }
        }
        finally
        {
            generation.Pending.TryRemove(correlationKey, out _);
        }
    }

    /// <summary>Sends a message that has no reply (InvocationCancel, WorkerTerminate) to the current worker.</summary>
    public void Post(StreamingMessage message) => Volatile.Read(ref _current).Outgoing.Writer.TryWrite(message);

    /// <summary>Dispatches one message a worker sent on its stream.</summary>
    internal void Receive(Generation generation, StreamingMessage message)
    {
        switch (message.ContentCase)
        {
            case StreamingMessage.ContentOneofCase.RpcLog:
                WriteWorkerLog(message.RpcLog);
                return;
            case StreamingMessage.ContentOneofCase.WorkerInitResponse:
                Complete(generation, CorrelationKeys.Init, message);
                return;
            case StreamingMessage.ContentOneofCase.FunctionMetadataResponse:
                Complete(generation, CorrelationKeys.Metadata, message);
                return;
            case StreamingMessage.ContentOneofCase.FunctionLoadResponse:
                Complete(generation, CorrelationKeys.Load(message.FunctionLoadResponse.FunctionId), message);
                return;
            case StreamingMessage.ContentOneofCase.InvocationResponse:
                Complete(generation, CorrelationKeys.Invocation(message.InvocationResponse.InvocationId), message);
                return;
            default:
                Logs.UnexpectedMessage(_log, message.ContentCase.ToString());
                return;
        }
    }

    /// <summary>A worker's stream ended or its process exited: its waiting requests fail, and later ones wait for the next worker.</summary>
    internal void Close(Generation generation, Exception reason)
    {
        lock (_gate)
        {
            if (generation.Closed is not null)
            {
                return;
            }
            generation.Closed = reason;
            generation.Outgoing.Writer.TryComplete();
            generation.Connected.TrySetException(reason);
            if (generation == _current && _ready.Task.IsCompleted)
            {
                _ready = new TaskCompletionSource<Generation>(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
        foreach (var pending in generation.Pending.Values)
        {
            pending.TrySetException(new WorkerUnavailableException("The worker's stream closed before it replied.", reason));
        }
    }

    /// <summary>The host is stopping: the current worker's requests fail, and so does every later one.</summary>
    internal void Stop(Exception reason)
    {
        _stopped.TrySetResult();
        Close(Volatile.Read(ref _current), reason);
    }

    private void Complete(Generation generation, string key, StreamingMessage message)
    {
        if (!generation.Pending.TryGetValue(key, out var waiting) || !waiting.TrySetResult(message))
        {
            Logs.UnmatchedReply(_log, message.ContentCase.ToString());
        }
    }

    /// <summary>One worker process's stream: its id, its outgoing queue and the requests that wait for its replies.</summary>
    internal sealed class Generation(string workerId)
    {
        public string WorkerId { get; } = workerId;
        public Channel<StreamingMessage> Outgoing { get; } = Channel.CreateUnbounded<StreamingMessage>(new UnboundedChannelOptions { SingleReader = true });
        public ConcurrentDictionary<string, TaskCompletionSource<StreamingMessage>> Pending { get; } = new(StringComparer.Ordinal);
        public TaskCompletionSource Connected { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile Exception? Closed;
    }

    private void WriteWorkerLog(RpcLog log)
    {
        LogLevel level = log.Level switch
        {
            RpcLog.Types.Level.Trace => LogLevel.Trace,
            RpcLog.Types.Level.Debug => LogLevel.Debug,
            RpcLog.Types.Level.Information => LogLevel.Information,
            RpcLog.Types.Level.Warning => LogLevel.Warning,
            RpcLog.Types.Level.Error => LogLevel.Error,
            RpcLog.Types.Level.Critical => LogLevel.Critical,
            _ => LogLevel.None,
        };
        if (level == LogLevel.None || !_workerLog.IsEnabled(level))
        {
            return;
        }
        // The worker's own text, as the Functions host prints it. The exception is reduced to its
        // type and message: a stack trace from user code belongs in the worker's own telemetry.
        string exception = log.Exception is { } e ? $" ({e.Type}: {FirstLine(e.Message)})" : string.Empty;
        _workerLog.Log(level, "[{Category}] {Message}{Exception}", log.Category, log.Message, exception);
    }

    private static string FirstLine(string text) => text.AsSpan().IndexOfAny('\r', '\n') is int end and >= 0 ? text[..end] : text;
}

/// <summary>The keys that tie a reply to its request.</summary>
internal static class CorrelationKeys
{
    public const string Init = "init";
    public const string Metadata = "metadata";
    public static string Load(string functionId) => "load:" + functionId;
    public static string Invocation(string invocationId) => "invoke:" + invocationId;
}

/// <summary>The worker process is gone or its stream is closed.</summary>
internal sealed class WorkerUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
