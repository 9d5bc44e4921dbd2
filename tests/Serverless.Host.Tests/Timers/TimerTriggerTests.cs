using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Serverless.Host.Http;
using Serverless.Host.Timers;
using Serverless.Storage;

namespace Serverless.Host.Tests.Timers;

/// <summary>
/// Timer triggers of the real sample app. The past-due case starts two hosts on one data directory, the
/// second with its clock moved past the occurrence the first recorded: the restart must run the timer once,
/// past due, with the status the first host stored.
/// </summary>
public sealed class TimerTriggerTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);
    private readonly string _data = Directory.CreateTempSubdirectory("serverless-host-timers-").FullName;

    [Fact]
    public async Task An_occurrence_missed_while_the_host_was_down_runs_once_past_due_after_the_restart()
    {
        IQueueStore queues = Stores.OpenEmbeddedQueues(Path.Combine(_data, "queues.db"));
        using var closeQueues = (IDisposable)queues;
        ScheduleStatusFile status = ScheduleStatusFile.For(_data, "Yearly");
        DateTime before = DateTime.UtcNow;

        await using (LocalHost first = await StartAsync(queues, TimeProvider.System))
        {
            await EventuallyAsync(() => status.Read(out _) is not null);
        }
        ScheduleStatus recorded = status.Read(out _)!;
        Assert.Equal(new DateTime(before.Year + 1, 1, 1, 0, 0, 0, DateTimeKind.Utc), recorded.Next);
        Assert.Equal(0, await queues.GetApproximateCountAsync("timer-yearly"));

        // The host comes back a day after the occurrence it expected.
        var later = new ShiftedTime(recorded.Next - DateTime.UtcNow + TimeSpan.FromDays(1));
        await using (LocalHost second = await StartAsync(queues, later))
        {
            using JsonDocument report = JsonDocument.Parse(await ReceiveOneAsync(queues, "timer-yearly"));
            Assert.True(report.RootElement.GetProperty("IsPastDue").GetBoolean());
            Assert.Equal(recorded.Next, report.RootElement.GetProperty("Next").GetDateTime().ToUniversalTime());
            await EventuallyAsync(() => status.Read(out _)?.Last == recorded.Next);
        }
        ScheduleStatus advanced = status.Read(out _)!;
        Assert.Equal(new DateTime(before.Year + 2, 1, 1, 0, 0, 0, DateTimeKind.Utc), advanced.Next);
        Assert.Equal(0, await queues.GetApproximateCountAsync("timer-yearly"));
    }

    [Fact]
    public async Task RunOnStartup_runs_at_each_start_without_a_status_and_an_unreadable_status_starts_afresh()
    {
        IQueueStore queues = Stores.OpenEmbeddedQueues(Path.Combine(_data, "queues.db"));
        using var closeQueues = (IDisposable)queues;
        ScheduleStatusFile status = ScheduleStatusFile.For(_data, "Yearly");
        Directory.CreateDirectory(Path.GetDirectoryName(status.Path)!);
        File.WriteAllText(status.Path, "{\"Last\": \"2026-01-01T00:00:00Z\", \"Ne");   // a torn write from some older tool

        await using (LocalHost host = await StartAsync(queues, TimeProvider.System))
        {
            using JsonDocument report = JsonDocument.Parse(await ReceiveOneAsync(queues, "timer-startup"));
            Assert.False(report.RootElement.GetProperty("IsPastDue").GetBoolean());
            Assert.Equal(JsonValueKind.Null, report.RootElement.GetProperty("Next").ValueKind);
            await EventuallyAsync(() => status.Read(out _) is not null);
        }
        Assert.True(status.Read(out _)!.Next > DateTime.UtcNow);
        Assert.Equal(0, await queues.GetApproximateCountAsync("timer-yearly"));
        Assert.Equal(0, await queues.GetApproximateCountAsync("timer-startup"));
    }

    private async Task<LocalHost> StartAsync(IQueueStore queues, TimeProvider time) => await LocalHost.StartAsync(new LocalHostOptions
    {
        AppDirectory = SampleAppHost.AppDirectory,
        DataDirectory = _data,
        Queues = queues,
        HttpPort = 0,
        Keys = FunctionKeys.Generate(),
        Time = time,
        LoggerFactory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning)),
    });

    private static async Task<string> ReceiveOneAsync(IQueueStore queues, string queue)
    {
        await queues.CreateQueueAsync(queue);
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            IReadOnlyList<QueueMessage> messages = await queues.GetAsync(queue, 1, TimeSpan.FromMinutes(5), timeout.Token);
            if (messages.Count == 1)
            {
                await queues.DeleteAsync(queue, messages[0].Id, messages[0].PopReceipt);
                return Encoding.UTF8.GetString(messages[0].Body.Span);
            }
            await Task.Delay(100, timeout.Token);
        }
    }

    private static Task EventuallyAsync(Func<bool> condition) => Waits.UntilAsync(condition, Patience, "the expected effect never appeared");

    public void Dispose() => Directory.Delete(_data, recursive: true);

    /// <summary>The system clock moved by a fixed offset (timers still wait on real time).</summary>
    private sealed class ShiftedTime(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
    }
}
