namespace Serverless.Host.Timers;

/// <summary>Builds a timer trigger's listener from its binding (schedule, runOnStartup, useMonitor).</summary>
internal static class TimerTriggers
{
    public static TimerTriggerListener Create(FunctionDescriptor function, BindingDescriptor trigger, AppSettings settings, string dataDirectory,
        WorkerChannel channel, IQueueStore? queues, TimeProvider time, ILogger log)
    {
        string expression = settings.Resolve(function.Name, trigger.GetString("schedule"))
            ?? throw new HostStartException($"function {function.Name}: the timer trigger has no schedule");
        TimerSchedule schedule = TimerSchedule.Parse(function.Name, expression);
        bool runOnStartup = trigger.GetBoolean("runOnStartup") ?? false;
        // The attribute defaults useMonitor to true; so does the Functions host when the binding omits it.
        bool useMonitor = trigger.GetBoolean("useMonitor") ?? true;
        Logs.TimerTrigger(log, function.Name, expression, runOnStartup, useMonitor && schedule.IsMonitorable(time.GetUtcNow().UtcDateTime));
        return new TimerTriggerListener(function, trigger, schedule, runOnStartup, useMonitor,
            ScheduleStatusFile.For(dataDirectory, function.Name), channel, queues, time, log);
    }
}
