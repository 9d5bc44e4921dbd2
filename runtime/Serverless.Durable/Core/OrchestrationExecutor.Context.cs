using System.Globalization;
using Microsoft.Extensions.Logging;
using Serverless.Durable.History;

namespace Serverless.Durable.Core;

internal sealed partial class OrchestrationExecutor
{
    /// <summary>The <see cref="TaskOrchestrationContext"/> handed to orchestrator code; every call lands in the executor.</summary>
    private sealed class Context(OrchestrationExecutor executor, ExecutionStarted started) : TaskOrchestrationContext
    {
        private int _guidCounter;

        public override string Name => started.Name;
        public override string InstanceId => executor._instanceId;
        public override bool IsReplaying => executor._replaying;
        public override DateTime CurrentUtcDateTime => executor._currentUtc;

        public override T? GetInput<T>() where T : default => DataConverter.Deserialize<T>(started.Input);

        public override Task<TResult> CallActivityAsync<TResult>(string name, object? input = null, TaskOptions? options = null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            var serialized = DataConverter.Serialize(input);
            return WithRetry(options?.Retry, () => executor.Schedule(PendingKind.Activity, name, serialized), Convert<TResult>);
        }

        public override Task<TResult> CallSubOrchestratorAsync<TResult>(string name, object? input = null, SubOrchestrationOptions? options = null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            var serialized = DataConverter.Serialize(input);
            var attempt = 0;
            return WithRetry(options?.Retry, () =>
            {
                // A deterministic child id unless one is given; retries get fresh ids so a failed child is kept for inspection.
                var childId = options?.InstanceId is { } given
                    ? (attempt++ == 0 ? given : $"{given}:retry{attempt - 1}")
                    : $"{InstanceId}:{executor._nextId.ToString(CultureInfo.InvariantCulture)}";
                return executor.Schedule(PendingKind.SubOrchestration, name, serialized, subInstanceId: childId);
            }, Convert<TResult>);
        }

        private async Task<TResult> WithRetry<TResult>(RetryPolicy? policy, Func<Task<string?>> call, Func<string?, TResult> convert)
        {
            if (policy is null) return convert(await call());
            var firstAttemptAt = CurrentUtcDateTime;
            for (var attempt = 1; ; attempt++)
            {
                TaskFailedException failure;
                try
                {
                    return convert(await call());
                }
                catch (TaskFailedException ex)
                {
                    failure = ex;
                }
                if (attempt >= policy.MaxNumberOfAttempts) throw failure;
                var delay = policy.DelayBeforeAttempt(attempt + 1);
                if (policy.RetryTimeout != Timeout.InfiniteTimeSpan && CurrentUtcDateTime + delay - firstAttemptAt > policy.RetryTimeout)
                    throw failure;
                await CreateTimer(CurrentUtcDateTime + delay);
            }
        }

        public override Task CreateTimer(DateTime fireAt, CancellationToken cancellationToken = default)
        {
            fireAt = fireAt.Kind == DateTimeKind.Local ? fireAt.ToUniversalTime() : DateTime.SpecifyKind(fireAt, DateTimeKind.Utc);
            var timer = executor.Schedule(PendingKind.Timer, null, null, fireAt);
            if (!cancellationToken.CanBeCanceled) return timer;
            return WithCancellation(timer, cancellationToken);
        }

        private static async Task WithCancellation(Task<string?> timer, CancellationToken cancellationToken)
        {
            var cancelled = new TaskCompletionSource();
            await using (cancellationToken.Register(() => cancelled.TrySetCanceled(cancellationToken)))
            {
                var first = await Task.WhenAny(timer, cancelled.Task);
                await first;
            }
        }

        public override async Task<T> WaitForExternalEvent<T>(string eventName, CancellationToken cancellationToken = default)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(eventName);
            var task = executor.WaitForEvent(eventName, out var waiter);
            if (waiter is not null && cancellationToken.CanBeCanceled)
                cancellationToken.Register(() => waiter.Completion.TrySetCanceled(cancellationToken));
            return Convert<T>(await task);
        }

        public override async Task<T> WaitForExternalEvent<T>(string eventName, TimeSpan timeout)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(eventName);
            ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.Zero);
            var task = executor.WaitForEvent(eventName, out var waiter);
            if (waiter is null) return Convert<T>(await task);
            var timer = executor.Schedule(PendingKind.Timer, null, null, CurrentUtcDateTime + timeout);
            var first = await Task.WhenAny(task, timer);
            if (first == task) return Convert<T>(await task);
            if (waiter.Completion.TrySetException(new TimeoutException($"Event '{eventName}' was not received within {timeout}.")))
            {
                await task; // throws the TimeoutException
            }
            return Convert<T>(await task);
        }

        public override void ContinueAsNew(object? newInput, bool preserveUnprocessedEvents = true)
        {
            executor._continueAsNew = true;
            executor._continueAsNewInput = newInput;
            executor._preserveEvents = preserveUnprocessedEvents;
        }

        public override void SetCustomStatus(object? customStatus) => executor._customStatus = DataConverter.Serialize(customStatus);

        public override Guid NewGuid()
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"{InstanceId}_{CurrentUtcDateTime:o}_{_guidCounter++}");
            return DeterministicGuid.Create(DeterministicGuid.OrchestrationNamespace, name);
        }

        public override ILogger CreateReplaySafeLogger(ILogger logger) => new ReplaySafeLogger(this, logger);

        private protected override ILogger CreateLogger(string categoryName) => executor._loggerFactory.CreateLogger(categoryName);
    }

    private sealed class ReplaySafeLogger(TaskOrchestrationContext context, ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);
        public bool IsEnabled(LogLevel logLevel) => !context.IsReplaying && inner.IsEnabled(logLevel);
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!context.IsReplaying) inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
