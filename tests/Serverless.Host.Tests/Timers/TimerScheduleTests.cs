using Serverless.Host.Timers;

namespace Serverless.Host.Tests.Timers;

public sealed class TimerScheduleTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("serverless-host-schedule-").FullName;

    [Theory]
    [InlineData("0 */5 * * * *", "2026-12-03T14:37:12Z", "2026-12-03T14:40:00Z")]
    [InlineData("30 0 9 * * 1-5", "2026-12-04T09:00:30Z", "2026-12-07T09:00:30Z")] // Friday 09:00:30 -> Monday
    [InlineData("00:30:00", "2026-12-03T14:37:12Z", "2026-12-03T15:00:00Z")]
    public void Six_field_cron_and_intervals_give_the_next_occurrence_in_utc(string expression, string after, string expected)
    {
        TimerSchedule schedule = TimerSchedule.Parse("F", expression);

        DateTime next = schedule.GetNextOccurrence(DateTime.Parse(after, null, System.Globalization.DateTimeStyles.AdjustToUniversal));

        Assert.Equal(DateTime.Parse(expected, null, System.Globalization.DateTimeStyles.AdjustToUniversal), next);
        Assert.Equal(DateTimeKind.Utc, next.Kind);
    }

    [Theory]
    [InlineData("*/5 * * * *", "six fields")]
    [InlineData("0 0 25 * * *", "not a valid NCrontab")]
    [InlineData("-00:01:00", "positive TimeSpan")]
    [InlineData(" ", "empty")]
    public void A_bad_schedule_is_a_one_line_start_error(string expression, string expected)
    {
        var error = Assert.Throws<HostStartException>(() => TimerSchedule.Parse("F", expression));

        Assert.Contains(expected, error.Message);
        Assert.StartsWith("function F:", error.Message);
    }

    [Fact]
    public void Only_schedules_of_a_minute_or_slower_are_monitored()
    {
        DateTime now = new(2026, 12, 3, 14, 0, 0, DateTimeKind.Utc);
        Assert.False(TimerSchedule.Parse("F", "*/10 * * * * *").IsMonitorable(now));
        Assert.True(TimerSchedule.Parse("F", "0 * * * * *").IsMonitorable(now));
        Assert.True(TimerSchedule.Parse("F", "0 0 0 1 1 *").IsMonitorable(now));
    }

    [Fact]
    public void The_status_file_round_trips_in_utc_and_a_rewrite_leaves_no_temporary_file()
    {
        var file = ScheduleStatusFile.For(_directory, "F");
        var first = new ScheduleStatus(new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), new DateTime(2027, 1, 1, 0, 0, 0, DateTimeKind.Utc), new DateTime(2026, 1, 1, 0, 0, 1, DateTimeKind.Utc));

        file.Write(first);
        file.Write(first with { Last = first.Next, Next = first.Next.AddYears(1) });

        ScheduleStatus? read = file.Read(out bool unreadable);
        Assert.False(unreadable);
        Assert.Equal(first.Next, read!.Last);
        Assert.Equal(first.Next.AddYears(1), read.Next);
        Assert.Equal(DateTimeKind.Utc, read.Next.Kind);
        Assert.Equal([file.Path], Directory.GetFiles(Path.GetDirectoryName(file.Path)!));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{\"Last\": \"2026-01-01T00:00:00Z\"")]
    [InlineData("{\"Last\": \"2026-01-01T00:00:00Z\"}")]
    [InlineData("[1, 2]")]
    public void A_torn_or_incomplete_status_is_unreadable_not_an_exception(string text)
    {
        var file = ScheduleStatusFile.For(_directory, "F");
        Directory.CreateDirectory(Path.GetDirectoryName(file.Path)!);
        File.WriteAllText(file.Path, text);

        Assert.Null(file.Read(out bool unreadable));
        Assert.True(unreadable);
    }

    [Fact]
    public void No_status_file_is_no_status()
    {
        Assert.Null(ScheduleStatusFile.For(_directory, "Missing").Read(out bool unreadable));
        Assert.False(unreadable);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
