namespace Serverless.Host;

/// <summary>Timer trigger messages (event ids 70-79).</summary>
internal static partial class Logs
{
    [LoggerMessage(70, LogLevel.Information, "Timer {Name}: {Schedule} (runOnStartup {RunOnStartup}, monitor {Monitor})")]
    public static partial void TimerTrigger(ILogger log, string name, string schedule, bool runOnStartup, bool monitor);

    [LoggerMessage(71, LogLevel.Warning, "Timer {Name} is past due (next was {Next:O}, now {Now:O}); running it once")]
    public static partial void TimerPastDue(ILogger log, string name, DateTime next, DateTime now);

    [LoggerMessage(72, LogLevel.Warning, "Timer {Name}: the stored schedule status {Path} is unreadable; starting afresh")]
    public static partial void TimerStatusUnreadable(ILogger log, string name, string path);
}
