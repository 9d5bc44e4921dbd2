namespace Serverless.Host;

/// <summary>The HTTP triggers' log messages (event ids 40-59).</summary>
internal static partial class Logs
{
    [LoggerMessage(40, LogLevel.Error, "Function {Name} ran (invocation {InvocationId}) but the worker's HTTP server did not answer: {Error}")]
    public static partial void WorkerHttpFailed(ILogger log, string name, string invocationId, string error);

    [LoggerMessage(41, LogLevel.Information, "HTTP triggers: {Integration} ({Detail})")]
    public static partial void HttpIntegration(ILogger log, string integration, string detail);
}
