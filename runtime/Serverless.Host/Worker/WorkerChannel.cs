using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Serverless.Host.Rpc;

namespace Serverless.Host.Worker;

/// <summary>
/// The host's side of one worker's EventStream. Requests go out through one queue, drained by a single
/// writer (gRPC allows one write at a time on a stream); replies are matched to their request by id,
/// because the worker answers out of order.
/// </summary>
internal sealed class WorkerChannel
{
    private readonly Channel<StreamingMessage> _outgoing = Channel.CreateUnbounded<StreamingMessage>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<string, TaskCompletionSource<StreamingMessage>> _pending = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger _workerLog;
    private readonly ILogger _log;
    private volatile Exception? _closed;

    public WorkerChannel(string workerId, ILoggerFactory loggers)
    {
        WorkerId = workerId;
        _workerLog = loggers.CreateLogger("Worker");
        _log = loggers.CreateLogger<WorkerChannel>();
    }

    /// <summary>The id the host gave the worker on its command line; StartStream must carry it.</summary>
    public string WorkerId { get; }

    /// <summary>Completes when the worker has opened the stream and sent StartStream.</summary>
    public Task Connected => _connected.Task;

    internal ChannelReader<StreamingMessage> Outgoing => _outgoing.Reader;

    internal void OnStarted() => _connected.TrySetResult();

    /// <summary>Sends a request and waits for the reply that carries <paramref name="correlationKey"/>.</summary>
    public async Task<StreamingMessage> SendAsync(string correlationKey, StreamingMessage request, CancellationToken cancel)
    {
        var reply = new TaskCompletionSource<StreamingMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.TryAdd(correlationKey, reply))
        {
            throw new InvalidOperationException($"A request with key '{correlationKey}' is already waiting for its reply.");
        }
        try
        {
            if (_closed is { } closed)
            {
                throw new WorkerUnavailableException("The worker's stream is closed.", closed);
            }
            await _outgoing.Writer.WriteAsync(request, cancel);
            using (cancel.Register(static state => ((TaskCompletionSource<StreamingMessage>)state!).TrySetCanceled(), reply))
            {
                return await reply.Task;
            }
        }
        finally
        {
            _pending.TryRemove(correlationKey, out _);
        }
    }

    /// <summary>Sends a message that has no reply (InvocationCancel, WorkerTerminate).</summary>
    public void Post(StreamingMessage message) => _outgoing.Writer.TryWrite(message);

    /// <summary>Dispatches one message the worker sent.</summary>
    internal void Receive(StreamingMessage message)
    {
        switch (message.ContentCase)
        {
            case StreamingMessage.ContentOneofCase.RpcLog:
                WriteWorkerLog(message.RpcLog);
                return;
            case StreamingMessage.ContentOneofCase.WorkerInitResponse:
                Complete(CorrelationKeys.Init, message);
                return;
            case StreamingMessage.ContentOneofCase.FunctionMetadataResponse:
                Complete(CorrelationKeys.Metadata, message);
                return;
            case StreamingMessage.ContentOneofCase.FunctionLoadResponse:
                Complete(CorrelationKeys.Load(message.FunctionLoadResponse.FunctionId), message);
                return;
            case StreamingMessage.ContentOneofCase.InvocationResponse:
                Complete(CorrelationKeys.Invocation(message.InvocationResponse.InvocationId), message);
                return;
            default:
                Logs.UnexpectedMessage(_log, message.ContentCase.ToString());
                return;
        }
    }

    /// <summary>The stream ended: every waiting request fails, and later ones fail at once.</summary>
    internal void Close(Exception reason)
    {
        _closed = reason;
        _connected.TrySetException(reason);
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(new WorkerUnavailableException("The worker's stream closed before it replied.", reason));
        }
    }

    private void Complete(string key, StreamingMessage message)
    {
        if (!_pending.TryGetValue(key, out var waiting) || !waiting.TrySetResult(message))
        {
            Logs.UnmatchedReply(_log, message.ContentCase.ToString());
        }
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
