namespace Serverless.Host.Durable;

/// <summary>The durable bridge's log messages (event ids 1600-1699, apart from the host's own).</summary>
internal static partial class DurableLogs
{
    [LoggerMessage(1600, LogLevel.Information, "Durable task hub {HubName} on {Backend}: {Orchestrators} orchestrators, {Activities} activities")]
    public static partial void Started(ILogger log, string hubName, string backend, int orchestrators, int activities);

    [LoggerMessage(1601, LogLevel.Warning, "The durable engine did not stop cleanly: {Error}")]
    public static partial void StopFailed(ILogger log, string error);

    [LoggerMessage(1602, LogLevel.Information, "Durable HTTP API: {Url}")]
    public static partial void HttpApi(ILogger log, string url);
}
