namespace Serverless.Host;

/// <summary>The host's log messages, with stable event ids.</summary>
internal static partial class Logs
{
    [LoggerMessage(1, LogLevel.Information, "Worker process {Pid} started: {WorkerPath}")]
    public static partial void WorkerStarted(ILogger log, int pid, string workerPath);

    [LoggerMessage(2, LogLevel.Information, "{Line}")]
    public static partial void WorkerOutput(ILogger log, string line);

    [LoggerMessage(3, LogLevel.Warning, "{Line}")]
    public static partial void WorkerError(ILogger log, string line);

    [LoggerMessage(4, LogLevel.Warning, "Worker sent a message the host does not handle: {Kind}")]
    public static partial void UnexpectedMessage(ILogger log, string kind);

    [LoggerMessage(5, LogLevel.Warning, "Worker sent a reply no request waits for: {Kind}")]
    public static partial void UnmatchedReply(ILogger log, string kind);

    [LoggerMessage(6, LogLevel.Information, "Function {Name} loaded: {Trigger}")]
    public static partial void FunctionLoaded(ILogger log, string name, string trigger);

    [LoggerMessage(7, LogLevel.Information, "HTTP {Name}: {Methods} {Url}")]
    public static partial void HttpRoute(ILogger log, string name, string methods, string url);

    [LoggerMessage(8, LogLevel.Warning, "Function {Name} has a {Trigger} trigger, which this host does not run yet")]
    public static partial void TriggerNotSupported(ILogger log, string name, string trigger);

    [LoggerMessage(9, LogLevel.Error, "Function {Name} failed (invocation {InvocationId}): {Reason}")]
    public static partial void InvocationFailed(ILogger log, string name, string invocationId, string reason);
}

internal static partial class Logs
{
    [LoggerMessage(20, LogLevel.Warning, "Queue {Queue}: receive failed ({Error}); polling again")]
    public static partial void QueueReceiveFailed(ILogger log, string queue, string error);

    [LoggerMessage(21, LogLevel.Error, "Queue {Queue}: could not settle message {Id} ({Error}); it comes back when its lease ends")]
    public static partial void QueueSettleFailed(ILogger log, string queue, string id, string error);

    [LoggerMessage(22, LogLevel.Warning, "Function {Name} failed on queue {Queue} message {Id} (delivery {Attempt} of {Max}): {Error}")]
    public static partial void QueueInvocationFailed(ILogger log, string name, string queue, string id, int attempt, int max, string error);

    [LoggerMessage(23, LogLevel.Warning, "Queue {Queue}: lost the lease on message {Id}; it may run twice")]
    public static partial void QueueLeaseLost(ILogger log, string queue, string id);

    [LoggerMessage(24, LogLevel.Error, "Queue {Queue}: message {Id} moved to {Poison} after {Count} deliveries")]
    public static partial void QueuePoisoned(ILogger log, string queue, string id, int count, string poison);

    [LoggerMessage(25, LogLevel.Information, "Queue {Name}: {Queue}")]
    public static partial void QueueTrigger(ILogger log, string name, string queue);
}
