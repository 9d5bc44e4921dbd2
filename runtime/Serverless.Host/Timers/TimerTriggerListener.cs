using Serverless.Host.Queues;

namespace Serverless.Host.Timers;

/// <summary>
/// A timer trigger with the Functions host's semantics. At start, a stored status whose <c>Next</c> is
/// already past means the host was down through an occurrence: the function runs once with
/// <c>IsPastDue = true</c> (missed occurrences are not replayed one by one); otherwise runOnStartup runs it
/// once. Then it runs at each occurrence. With the monitor on, the status is written after each run, so a
/// crash during one makes it past due at the next start (at least once). A failed run is not retried, as
/// in Azure Functions; a run cut by a worker restart is repeated on the next worker.
/// </summary>
internal sealed class TimerTriggerListener(
    FunctionDescriptor function,
    BindingDescriptor trigger,
    TimerSchedule schedule,
    bool runOnStartup,
    bool useMonitor,
    ScheduleStatusFile statusFile,
    WorkerChannel channel,
    IQueueStore? queues,
    TimeProvider time,
    ILogger log)
{
    private DateTime Now => time.GetUtcNow().UtcDateTime;

    public async Task RunAsync(CancellationToken stopping)
    {
        bool monitor = useMonitor && schedule.IsMonitorable(Now);
        ScheduleStatus? status = monitor ? ReadStatus() : null;
        DateTime now = Now;
        if (status is not null && status.Next < now)
        {
            Logs.TimerPastDue(log, function.Name, status.Next, now);
            status = await RunOnceAsync(status, occurrence: status.Next, isPastDue: true, monitor, stopping);
        }
        else if (runOnStartup)
        {
            status = await RunOnceAsync(status, occurrence: now, isPastDue: false, monitor, stopping);
        }
        else if (monitor && (status is null || status.Next != schedule.GetNextOccurrence(now)))
        {
            // First start, or a changed schedule: record the next occurrence, so a restart can tell it was missed.
            status = new ScheduleStatus(status?.Last ?? default, schedule.GetNextOccurrence(now), now);
            statusFile.Write(status);
        }

        while (!stopping.IsCancellationRequested)
        {
            DateTime next = schedule.GetNextOccurrence(Now);
            await DelayUntilAsync(next, stopping);
            status = await RunOnceAsync(status, next, isPastDue: false, monitor, stopping);
        }
    }

    private ScheduleStatus? ReadStatus()
    {
        ScheduleStatus? status = statusFile.Read(out bool unreadable);
        if (unreadable)
        {
            Logs.TimerStatusUnreadable(log, function.Name, statusFile.Path);
        }
        return status;
    }

    private async Task DelayUntilAsync(DateTime when, CancellationToken stopping)
    {
        // Timers may wake a tick early, and Task.Delay tops out near 49 days: loop until the clock agrees.
        for (TimeSpan remaining = when - Now; remaining > TimeSpan.Zero; remaining = when - Now)
        {
            await Task.Delay(remaining > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : remaining, time, stopping);
        }
    }

    private async Task<ScheduleStatus?> RunOnceAsync(ScheduleStatus? status, DateTime occurrence, bool isPastDue, bool monitor, CancellationToken stopping)
    {
        while (true)
        {
            string invocationId = Guid.NewGuid().ToString();
            try
            {
                StreamingMessage reply = await channel.SendAsync(
                    CorrelationKeys.Invocation(invocationId),
                    new StreamingMessage { RequestId = invocationId, InvocationRequest = BuildInvocation(invocationId, status, isPastDue) },
                    Timeout.InfiniteTimeSpan,
                    stopping);
                InvocationResponse response = reply.InvocationResponse;
                if (response.Result?.Status == StatusResult.Types.Status.Success)
                {
                    // Outputs before the status: a crash in between repeats the run, it never drops its output.
                    await QueueOutputs.WriteAsync(function, response, queues, CancellationToken.None);
                }
                else
                {
                    // Only the exception's type: its message may carry data.
                    Logs.InvocationFailed(log, function.Name, invocationId, response.Result?.Exception?.Type is { Length: > 0 } type ? type : "failure");
                }
                break;
            }
            catch (WorkerUnavailableException)
            {
                // The worker went away mid-run; the next one runs this occurrence again.
            }
        }
        if (!monitor)
        {
            return null;
        }
        DateTime now = Now;
        var updated = new ScheduleStatus(occurrence, schedule.GetNextOccurrence(occurrence > now ? occurrence : now), now);
        statusFile.Write(updated);
        return updated;
    }

    private InvocationRequest BuildInvocation(string invocationId, ScheduleStatus? status, bool isPastDue)
    {
        var invocation = new InvocationRequest
        {
            InvocationId = invocationId,
            FunctionId = function.Id,
            // The worker reads the trace context unconditionally: it must be present, even empty.
            TraceContext = new RpcTraceContext(),
        };
        // The TimerInfo JSON the worker's TimerInfoConverter reads (ScheduleStatus, IsPastDue; property
        // names matched case-insensitively), shaped as the Functions host sends it.
        var info = new TimerInfoJson(
            new ScheduleJson(AdjustForDST: true),
            status is null ? null : new ScheduleStatusJson(status.Last, status.Next, status.LastUpdated),
            isPastDue);
        invocation.InputData.Add(new ParameterBinding
        {
            Name = trigger.Name,
            Data = new TypedData { Json = JsonSerializer.Serialize(info, TimerJson.Default.TimerInfoJson) },
        });
        return invocation;
    }
}

internal sealed record TimerInfoJson(ScheduleJson Schedule, ScheduleStatusJson? ScheduleStatus, bool IsPastDue);

internal sealed record ScheduleJson(bool AdjustForDST);

internal sealed record ScheduleStatusJson(DateTime Last, DateTime Next, DateTime LastUpdated);

[System.Text.Json.Serialization.JsonSerializable(typeof(TimerInfoJson))]
internal sealed partial class TimerJson : System.Text.Json.Serialization.JsonSerializerContext;
