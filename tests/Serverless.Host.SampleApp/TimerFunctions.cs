using System.Text.Json;
using Microsoft.Azure.Functions.Worker;

namespace Serverless.Host.SampleApp;

/// <summary>
/// Timer-trigger cases for the local host's conformance tests. Each run reports the TimerInfo it was given
/// through a queue output, so a test sees whether it ran, whether it was past due, and which status it saw.
/// </summary>
public sealed class TimerFunctions
{
    /// <summary>Once a year (the schedule is an app setting): a test moves the clock past it between two host starts.</summary>
    [Function("Yearly")]
    [QueueOutput("timer-yearly")]
    public static string Yearly([TimerTrigger("%SampleYearlySchedule%")] TimerInfo timer) => Report(timer);

    /// <summary>Runs once at every host start and keeps no status.</summary>
    [Function("OnStartup")]
    [QueueOutput("timer-startup")]
    public static string OnStartup([TimerTrigger("0 0 0 1 1 *", RunOnStartup = true, UseMonitor = false)] TimerInfo timer) => Report(timer);

    private static string Report(TimerInfo timer) =>
        JsonSerializer.Serialize(new TimerReport(timer.IsPastDue, timer.ScheduleStatus?.Last, timer.ScheduleStatus?.Next));

    public sealed record TimerReport(bool IsPastDue, DateTime? Last, DateTime? Next);
}
