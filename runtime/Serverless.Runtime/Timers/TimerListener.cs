using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Storage;

namespace Serverless.Runtime.Timers;

/// <summary>
/// Runs one timer function. Like Azure Functions' schedule monitor, the status (last, next) is kept in a
/// blob, written after each invocation; at start, a stored <c>next</c> already in the past means the host
/// was down through an occurrence, so the function runs once with <see cref="TimerInfo.IsPastDue"/> (missed
/// occurrences are not replayed one by one). Hosts sharing storage run each timer on one host at a time
/// (<see cref="TimerLock"/>). Time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class TimerListener(FunctionDefinition function, IFunctionExecutor executor, IBlobStoreProvider blobs,
    TimeProvider time, IConfiguration configuration, ILogger logger)
{
    internal const string StatusContainer = "serverless-host";
    private static readonly TimeSpan LockTtl = TimeSpan.FromMinutes(2);
    private readonly TimerTriggerAttribute _trigger = (TimerTriggerAttribute)function.Trigger;
    private TimerLock? _lock;

    private string StatusBlob => $"timers/{function.Name}/status";

    public async Task RunAsync(CancellationToken stopping)
    {
        TimerSchedule.TryParse(FunctionCatalog.ResolveSetting(_trigger.Schedule, configuration), out var schedule, out _);
        var store = blobs.GetContainer(StatusContainer);
        _lock = new TimerLock(store, function.Name, $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid():N}", time, LockTtl);
        try
        {
            await RunScheduleAsync(store, schedule!, stopping).ConfigureAwait(false);
        }
        finally
        {
            await _lock.ReleaseAsync().ConfigureAwait(false);
        }
    }

    private async Task RunScheduleAsync(IBlobStore store, TimerSchedule schedule, CancellationToken stopping)
    {
        var now = Now;
        var status = _trigger.UseMonitor ? await ReadStatusAsync(store, stopping).ConfigureAwait(false) : null;

        if (status is not null && status.Next < now)
        {
            logger.LogInformation("Timer {Function} is past due (next was {Next:O}, now {Now:O}); running it once", function.Name, status.Next, now);
            status = await InvokeAsync(store, schedule!, status, occurrence: now, isPastDue: true, stopping).ConfigureAwait(false);
        }
        else if (_trigger.RunOnStartup)
        {
            status = await InvokeAsync(store, schedule!, status, occurrence: now, isPastDue: false, stopping).ConfigureAwait(false);
        }
        else if (_trigger.UseMonitor && (status is null || status.Next != schedule!.GetNextOccurrence(now)))
        {
            // First start (or a changed schedule): record when we expect to run, so a restart can tell it was missed.
            status = new ScheduleStatus(status?.Last ?? default, schedule!.GetNextOccurrence(now), now);
            await WriteStatusAsync(store, status, stopping).ConfigureAwait(false);
        }

        while (!stopping.IsCancellationRequested)
        {
            var next = schedule!.GetNextOccurrence(Now);
            await DelayUntilAsync(next, stopping).ConfigureAwait(false);
            status = await InvokeAsync(store, schedule, status, occurrence: next, isPastDue: false, stopping).ConfigureAwait(false);
        }
    }

    private DateTime Now => time.GetUtcNow().UtcDateTime;

    private async Task DelayUntilAsync(DateTime when, CancellationToken stopping)
    {
        // Timers may wake early by a tick, and Task.Delay caps out near 49 days: loop until the clock agrees.
        for (var remaining = when - Now; remaining > TimeSpan.Zero; remaining = when - Now)
        {
            var step = remaining > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : remaining;
            await Task.Delay(step, time, stopping).ConfigureAwait(false);
        }
    }

    private async Task<ScheduleStatus?> InvokeAsync(IBlobStore store, TimerSchedule schedule, ScheduleStatus? status, DateTime occurrence,
        bool isPastDue, CancellationToken stopping)
    {
        if (!await _lock!.TryAcquireAsync(stopping).ConfigureAwait(false))
        {
            // Another host runs this timer; it also keeps the status.
            logger.LogDebug("Timer {Function}: another host holds the lock; skipping {Occurrence:O}", function.Name, occurrence);
            return _trigger.UseMonitor ? await ReadStatusAsync(store, stopping).ConfigureAwait(false) : null;
        }
        try
        {
            await executor.ExecuteAsync(function, new TimerInfo(status, isPastDue), new Dictionary<string, object?>
            {
                ["ScheduledTime"] = occurrence,
                ["IsPastDue"] = isPastDue,
            }, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e)
        {
            // A failing timer still advances: Azure Functions does not retry timer invocations either.
            logger.LogError(e, "Timer function {Function} failed", function.Name);
        }
        if (!_trigger.UseMonitor) return null;
        var now = Now;
        var updated = new ScheduleStatus(occurrence, schedule.GetNextOccurrence(occurrence > now ? occurrence : now), now);
        await WriteStatusAsync(store, updated, CancellationToken.None).ConfigureAwait(false);
        return updated;
    }

    private async Task<ScheduleStatus?> ReadStatusAsync(IBlobStore store, CancellationToken cancellationToken)
    {
        await using var download = await store.GetAsync(StatusBlob, cancellationToken).ConfigureAwait(false);
        if (download is null) return null;
        try
        {
            var status = await JsonSerializer.DeserializeAsync<ScheduleStatus>(download.Content, JsonSerializerOptions.Web, cancellationToken).ConfigureAwait(false);
            return status is null ? null : status with
            {
                Last = DateTime.SpecifyKind(status.Last, DateTimeKind.Utc),
                Next = DateTime.SpecifyKind(status.Next, DateTimeKind.Utc),
                LastUpdated = DateTime.SpecifyKind(status.LastUpdated, DateTimeKind.Utc),
            };
        }
        catch (JsonException e)
        {
            logger.LogWarning(e, "Timer {Function}: the stored schedule status is unreadable; starting afresh", function.Name);
            return null;
        }
    }

    private async Task WriteStatusAsync(IBlobStore store, ScheduleStatus status, CancellationToken cancellationToken)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(status, JsonSerializerOptions.Web);
        await store.PutAsync(StatusBlob, new MemoryStream(bytes), BlobCondition.None, cancellationToken).ConfigureAwait(false);
    }
}
