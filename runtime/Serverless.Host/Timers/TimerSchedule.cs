using System.Globalization;
using NCrontab;

namespace Serverless.Host.Timers;

/// <summary>
/// A timer trigger's schedule as the Functions host accepts it: a six-field NCrontab expression
/// (second minute hour day month weekday, UTC) or a TimeSpan interval such as "00:30:00"
/// (learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
/// </summary>
internal abstract class TimerSchedule
{
    /// <summary>The first occurrence strictly after <paramref name="after"/> (UTC).</summary>
    public abstract DateTime GetNextOccurrence(DateTime after);

    /// <summary>The schedule's text, as the binding gave it (after %SETTING% resolution).</summary>
    public required string Expression { get; init; }

    /// <summary>
    /// Whether the schedule recurs at most once a minute. The Functions host keeps no schedule status for
    /// faster schedules (a missed second is not worth a storage write per occurrence), whatever useMonitor says.
    /// </summary>
    public bool IsMonitorable(DateTime from)
    {
        DateTime first = GetNextOccurrence(from);
        return GetNextOccurrence(first) - first >= TimeSpan.FromMinutes(1);
    }

    /// <summary>Parses a schedule; the error is one line naming what is wrong, never the function's data.</summary>
    public static TimerSchedule Parse(string functionName, string expression)
    {
        if (string.IsNullOrWhiteSpace(expression))
        {
            throw new HostStartException($"function {functionName}: the timer schedule is empty");
        }
        if (expression.Contains(':'))
        {
            if (!TimeSpan.TryParse(expression, CultureInfo.InvariantCulture, out TimeSpan interval) || interval <= TimeSpan.Zero)
            {
                throw new HostStartException($"function {functionName}: the timer schedule '{expression}' is not a positive TimeSpan (hh:mm:ss)");
            }
            return new Interval(interval) { Expression = expression };
        }
        int fields = expression.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields != 6)
        {
            throw new HostStartException(
                $"function {functionName}: the timer schedule '{expression}' must have six fields (second minute hour day month weekday); it has {fields}");
        }
        CrontabSchedule? cron = CrontabSchedule.TryParse(expression, new CrontabSchedule.ParseOptions { IncludingSeconds = true });
        return cron is null
            ? throw new HostStartException($"function {functionName}: the timer schedule '{expression}' is not a valid NCrontab expression")
            : new Cron(cron) { Expression = expression };
    }

    private sealed class Cron(CrontabSchedule schedule) : TimerSchedule
    {
        // NCrontab works on unspecified-kind times; the host's times are UTC throughout.
        public override DateTime GetNextOccurrence(DateTime after) =>
            DateTime.SpecifyKind(schedule.GetNextOccurrence(DateTime.SpecifyKind(after, DateTimeKind.Unspecified)), DateTimeKind.Utc);
    }

    /// <summary>
    /// An interval ticks on multiples of itself since the Unix epoch, so a restart keeps the same grid
    /// (the Functions host counts from the last run; a fixed grid makes the next occurrence computable
    /// from the clock alone, which is what the stored status compares against).
    /// </summary>
    private sealed class Interval(TimeSpan interval) : TimerSchedule
    {
        public override DateTime GetNextOccurrence(DateTime after)
        {
            long sinceEpoch = after.Ticks - DateTime.UnixEpoch.Ticks;
            long next = (sinceEpoch / interval.Ticks + 1) * interval.Ticks;
            return new DateTime(DateTime.UnixEpoch.Ticks + next, DateTimeKind.Utc);
        }
    }
}
