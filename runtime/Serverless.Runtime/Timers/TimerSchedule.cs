using System.Globalization;
using NCrontab;

namespace Serverless.Runtime.Timers;

/// <summary>A six-field NCrontab schedule (with seconds, UTC) or a fixed TimeSpan interval, as Azure Functions timers accept.</summary>
internal abstract class TimerSchedule
{
    /// <summary>The first occurrence strictly after <paramref name="after"/> (UTC).</summary>
    public abstract DateTime GetNextOccurrence(DateTime after);

    public static bool TryParse(string expression, out TimerSchedule? schedule, out string? error)
    {
        schedule = null;
        error = null;
        if (string.IsNullOrWhiteSpace(expression))
        {
            error = "is empty";
            return false;
        }
        if (expression.Contains(':') && TimeSpan.TryParse(expression, CultureInfo.InvariantCulture, out var interval))
        {
            if (interval <= TimeSpan.Zero)
            {
                error = "an interval must be positive";
                return false;
            }
            schedule = new Interval(interval);
            return true;
        }
        var fields = expression.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length != 6)
        {
            error = $"must have six fields (second minute hour day month weekday); has {fields.Length}";
            return false;
        }
        var cron = CrontabSchedule.TryParse(expression, new CrontabSchedule.ParseOptions { IncludingSeconds = true });
        if (cron is null)
        {
            error = "is not a valid NCrontab expression";
            return false;
        }
        schedule = new Cron(cron);
        return true;
    }

    private sealed class Cron(CrontabSchedule schedule) : TimerSchedule
    {
        public override DateTime GetNextOccurrence(DateTime after) =>
            DateTime.SpecifyKind(schedule.GetNextOccurrence(DateTime.SpecifyKind(after, DateTimeKind.Unspecified)), DateTimeKind.Utc);
    }

    /// <summary>Interval schedules tick on multiples of the interval since the Unix epoch, so restarts keep the same grid.</summary>
    private sealed class Interval(TimeSpan interval) : TimerSchedule
    {
        public override DateTime GetNextOccurrence(DateTime after)
        {
            var sinceEpoch = after.Ticks - DateTime.UnixEpoch.Ticks;
            var next = (sinceEpoch / interval.Ticks + 1) * interval.Ticks;
            return new DateTime(DateTime.UnixEpoch.Ticks + next, DateTimeKind.Utc);
        }
    }
}

/// <summary>What a timer function receives, as Azure Functions' <c>TimerInfo</c>.</summary>
public sealed class TimerInfo
{
    public TimerInfo(ScheduleStatus? scheduleStatus, bool isPastDue)
    {
        ScheduleStatus = scheduleStatus;
        IsPastDue = isPastDue;
    }

    /// <summary>The persisted schedule status (null when the monitor is off).</summary>
    public ScheduleStatus? ScheduleStatus { get; }

    /// <summary>True when this invocation catches up an occurrence missed while the host was down (or late by more than a moment).</summary>
    public bool IsPastDue { get; }
}

/// <summary>The persisted status of a timer: the last occurrence run, the next expected, and when it was written (UTC).</summary>
public sealed record ScheduleStatus(DateTime Last, DateTime Next, DateTime LastUpdated);
