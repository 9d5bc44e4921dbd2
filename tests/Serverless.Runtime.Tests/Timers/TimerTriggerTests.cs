using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Tests.Support;
using Serverless.Runtime.Timers;

namespace Serverless.Runtime.Tests.Timers;

public sealed class TimerTriggerTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 30, TimeSpan.Zero);

    public sealed class Recorder
    {
        private readonly List<(DateTimeOffset At, TimerInfo Info)> _calls = [];
        public void Add(DateTimeOffset at, TimerInfo info) { lock (_calls) _calls.Add((at, info)); }
        public (DateTimeOffset At, TimerInfo Info)[] Calls { get { lock (_calls) return [.. _calls]; } }
    }

    public sealed class EveryFiveMinutes(Recorder recorder, TimeProvider time)
    {
        [Function("EveryFive")]
        public void Run([TimerTrigger("0 */5 * * * *")] TimerInfo timer) => recorder.Add(time.GetUtcNow(), timer);
    }

    public sealed class OnStartup(Recorder recorder, TimeProvider time)
    {
        [Function("OnStartup")]
        public void Run([TimerTrigger("0 0 3 * * *", RunOnStartup = true)] TimerInfo timer) => recorder.Add(time.GetUtcNow(), timer);
    }

    public sealed class Interval(Recorder recorder, TimeProvider time)
    {
        [Function("Interval")]
        public void Run([TimerTrigger("00:00:10")] TimerInfo timer) => recorder.Add(time.GetUtcNow(), timer);
    }

    public sealed class BadCron
    {
        [Function("BadCron")]
        public void Run([TimerTrigger("*/5 * * * *")] TimerInfo timer) { }
    }

    private static Task<TestHost> StartAsync(Type functions, ManualTimeProvider time, Recorder recorder, string dataDirectory) =>
        TestHost.StartAsync([functions], time: time, dataDirectory: dataDirectory, configure: b => b.Services.AddSingleton(recorder));

    private static async Task<ScheduleStatus?> ReadStatusAsync(TestHost host, string function)
    {
        var store = host.Services.GetRequiredService<IBlobStoreProvider>().GetContainer("serverless-host");
        await using var download = await store.GetAsync($"timers/{function}/status");
        return download is null ? null : await JsonSerializer.DeserializeAsync<ScheduleStatus>(download.Content, JsonSerializerOptions.Web);
    }

    private static Task TimerArmedAsync(ManualTimeProvider time, DateTimeOffset due) =>
        Eventually.HoldsAsync(() => time.PendingDueTimes.Contains(due), $"a timer armed for {due:O}");

    [Fact]
    public async Task A_past_due_timer_fires_once_after_restart_then_follows_the_schedule()
    {
        using var data = new TempDirectory();
        var time = new ManualTimeProvider(Start);
        var recorder = new Recorder();

        await using (var first = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path))
        {
            await Eventually.HoldsAsync(async () => (await ReadStatusAsync(first, "EveryFive"))?.Next == new DateTime(2026, 1, 1, 0, 5, 0, DateTimeKind.Utc),
                "the first start to record the next occurrence");
            await TimerArmedAsync(time, new DateTimeOffset(2026, 1, 1, 0, 5, 0, TimeSpan.Zero));
        }
        Assert.Empty(recorder.Calls);

        // The host is down through 00:05, 00:10 and 00:15.
        time.AdvanceTo(new DateTimeOffset(2026, 1, 1, 0, 17, 0, TimeSpan.Zero));

        await using var second = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path);
        await Eventually.HoldsAsync(() => recorder.Calls.Length == 1, "the past-due invocation");
        var pastDue = recorder.Calls[0];
        Assert.True(pastDue.Info.IsPastDue);
        Assert.Equal(new DateTime(2026, 1, 1, 0, 5, 0, DateTimeKind.Utc), pastDue.Info.ScheduleStatus!.Next);

        // Once, not once per missed occurrence: the next call waits for 00:20.
        var next = new DateTimeOffset(2026, 1, 1, 0, 20, 0, TimeSpan.Zero);
        await TimerArmedAsync(time, next);
        Assert.Single(recorder.Calls);
        var status = await ReadStatusAsync(second, "EveryFive");
        Assert.Equal(next.UtcDateTime, status!.Next);

        time.AdvanceTo(next);
        await Eventually.HoldsAsync(() => recorder.Calls.Length == 2, "the scheduled invocation");
        Assert.False(recorder.Calls[1].Info.IsPastDue);
        Assert.Equal(next, recorder.Calls[1].At);
        await Eventually.HoldsAsync(async () => (await ReadStatusAsync(second, "EveryFive"))?.Last == next.UtcDateTime, "status after the run");
    }

    [Fact]
    public async Task A_restart_before_the_next_occurrence_is_not_past_due()
    {
        using var data = new TempDirectory();
        var time = new ManualTimeProvider(Start);
        var recorder = new Recorder();
        await using (var first = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path))
            await TimerArmedAsync(time, new DateTimeOffset(2026, 1, 1, 0, 5, 0, TimeSpan.Zero));
        time.Advance(TimeSpan.FromMinutes(2));
        await using var second = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path);
        await TimerArmedAsync(time, new DateTimeOffset(2026, 1, 1, 0, 5, 0, TimeSpan.Zero));
        Assert.Empty(recorder.Calls);
    }

    [Fact]
    public async Task Run_on_startup_fires_once_at_start()
    {
        using var data = new TempDirectory();
        var time = new ManualTimeProvider(Start);
        var recorder = new Recorder();
        await using var host = await StartAsync(typeof(OnStartup), time, recorder, data.Path);
        await Eventually.HoldsAsync(() => recorder.Calls.Length == 1, "the start-up invocation");
        Assert.False(recorder.Calls[0].Info.IsPastDue);
        await TimerArmedAsync(time, new DateTimeOffset(2026, 1, 1, 3, 0, 0, TimeSpan.Zero));
        Assert.Single(recorder.Calls);
    }

    [Fact]
    public async Task Interval_schedules_tick_on_their_grid()
    {
        using var data = new TempDirectory();
        var time = new ManualTimeProvider(Start.AddSeconds(3));
        var recorder = new Recorder();
        await using var host = await StartAsync(typeof(Interval), time, recorder, data.Path);
        for (var i = 1; i <= 3; i++)
        {
            var due = Start.AddSeconds(10 * i);
            await TimerArmedAsync(time, due);
            time.AdvanceTo(due);
            await Eventually.HoldsAsync(() => recorder.Calls.Length == i, $"tick {i}");
            Assert.Equal(due, recorder.Calls[i - 1].At);
        }
    }

    [Fact]
    public async Task Two_hosts_sharing_storage_run_each_occurrence_once()
    {
        using var data = new TempDirectory();
        var time = new ManualTimeProvider(Start);
        var recorder = new Recorder();
        await using var a = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path);
        await using var b = await StartAsync(typeof(EveryFiveMinutes), time, recorder, data.Path);
        for (var i = 1; i <= 3; i++)
        {
            var due = new DateTimeOffset(2026, 1, 1, 0, 5 * i, 0, TimeSpan.Zero);
            await Eventually.HoldsAsync(() => time.PendingDueTimes.Count(d => d == due) == 2, $"both hosts waiting for {due:t}");
            time.AdvanceTo(due);
            await Eventually.HoldsAsync(() => recorder.Calls.Length == i, $"occurrence {i}");
            // Both hosts must be waiting for the next occurrence before we can be sure no second run happened.
            var next = due.AddMinutes(5);
            await Eventually.HoldsAsync(() => time.PendingDueTimes.Count(d => d == next) == 2, "both hosts past the occurrence");
            Assert.Equal(i, recorder.Calls.Length);
        }
    }

    [Fact]
    public async Task A_five_field_cron_stops_the_host_naming_the_function()
    {
        var e = await Assert.ThrowsAsync<FunctionIndexException>(() => TestHost.StartAsync([typeof(BadCron)]));
        Assert.Contains("function 'BadCron'", e.Message);
        Assert.Contains("six fields", e.Message);
    }
}
