namespace Serverless.Host;

/// <summary>Worker restart messages (event ids 60-69).</summary>
internal static partial class Logs
{
    [LoggerMessage(60, LogLevel.Error, "Worker process {Pid} exited with code {Code}; restarting it in {Seconds} s")]
    public static partial void WorkerExitedRestarting(ILogger log, int pid, int code, double seconds);

    [LoggerMessage(61, LogLevel.Information, "Worker process {Pid} is ready again")]
    public static partial void WorkerRestarted(ILogger log, int pid);

    [LoggerMessage(62, LogLevel.Error, "The worker could not be restarted ({Reason}); trying again")]
    public static partial void WorkerRestartFailed(ILogger log, string reason);
}
