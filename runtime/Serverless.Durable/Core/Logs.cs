using Microsoft.Extensions.Logging;

namespace Serverless.Durable.Core;

/// <summary>Every log line of the engine, with stable event ids (7000-7099).</summary>
internal static partial class Logs
{
    [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Durable worker started: hub {HubName}, {Backend} backend, {Orchestrators} orchestrator(s), {Activities} activit(ies)")]
    public static partial void WorkerStarted(this ILogger logger, string hubName, string backend, int orchestrators, int activities);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Durable worker stopped: hub {HubName}")]
    public static partial void WorkerStopped(this ILogger logger, string hubName);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "Orchestration {InstanceId} ({Name}) scheduled")]
    public static partial void InstanceScheduled(this ILogger logger, string instanceId, string name);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "Orchestration {InstanceId} ({Name}) started")]
    public static partial void InstanceStarted(this ILogger logger, string instanceId, string name);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Information, Message = "Orchestration {InstanceId} ({Name}) finished {Status} after {DurationMs:F1} ms")]
    public static partial void InstanceFinished(this ILogger logger, string instanceId, string name, OrchestrationRuntimeStatus status, double durationMs);

    [LoggerMessage(EventId = 7013, Level = LogLevel.Warning, Message = "Orchestration {InstanceId} ({Name}) failed: {Failure}")]
    public static partial void InstanceFailed(this ILogger logger, string instanceId, string name, string failure);

    [LoggerMessage(EventId = 7014, Level = LogLevel.Information, Message = "Orchestration {InstanceId} ({Name}) continued as new")]
    public static partial void InstanceContinuedAsNew(this ILogger logger, string instanceId, string name);

    [LoggerMessage(EventId = 7020, Level = LogLevel.Debug, Message = "Episode of {InstanceId}: replayed {Replayed} event(s), processed {Messages} message(s), {NewEvents} new event(s), {Activities} activit(ies) scheduled")]
    public static partial void EpisodeCompleted(this ILogger logger, string instanceId, int replayed, int messages, int newEvents, int activities);

    [LoggerMessage(EventId = 7021, Level = LogLevel.Warning, Message = "Episode of {InstanceId} discarded: {Reason}")]
    public static partial void EpisodeDiscarded(this ILogger logger, string instanceId, string reason);

    [LoggerMessage(EventId = 7022, Level = LogLevel.Error, Message = "Episode of {InstanceId} failed and was abandoned; it will be retried")]
    public static partial void EpisodeAbandoned(this ILogger logger, string instanceId, Exception exception);

    [LoggerMessage(EventId = 7030, Level = LogLevel.Debug, Message = "Activity {Name} #{TaskId} of {InstanceId} completed")]
    public static partial void ActivityCompleted(this ILogger logger, string name, int taskId, string instanceId);

    [LoggerMessage(EventId = 7031, Level = LogLevel.Warning, Message = "Activity {Name} #{TaskId} of {InstanceId} failed: {Message}")]
    public static partial void ActivityFailed(this ILogger logger, string name, int taskId, string instanceId, string message);

    [LoggerMessage(EventId = 7032, Level = LogLevel.Error, Message = "Recording activity results failed; the work items will be retried when their leases expire")]
    public static partial void ActivityCommitFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 7040, Level = LogLevel.Error, Message = "Polling the {Queue} queue failed; backing off")]
    public static partial void PollFailed(this ILogger logger, string queue, Exception exception);

    [LoggerMessage(EventId = 7041, Level = LogLevel.Warning, Message = "Lease renewal of {What} failed: {Message}")]
    public static partial void LeaseRenewalFailed(this ILogger logger, string what, string message);
}
