using System.Text.Json;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Storage;

namespace Serverless.Runtime.Queues;

/// <summary>
/// What lands in <c>&lt;queue&gt;-poison</c> when a message fails <c>maxDequeueCount</c> times: the original
/// body (base64 in JSON) with the last error, so nothing is lost and the cause is on record; credentials
/// in a JSON body are redacted (<see cref="PoisonRedaction"/>).
/// </summary>
public sealed record PoisonMessage(string Queue, string MessageId, int DequeueCount, DateTimeOffset InsertedAt, DateTimeOffset FailedAt,
    string LastError, byte[] Body)
{
    public static string PoisonQueueName(string queue) => queue + "-poison";

    public static PoisonMessage Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<PoisonMessage>(json, JsonSerializerOptions.Web) ?? throw new JsonException("poison message is null");
}

/// <summary>
/// Polls one queue for one function, as the Azure Functions queue listener: fetches up to batchSize
/// messages, runs them in parallel, fetches again when only newBatchThreshold are still running, backs
/// off exponentially (100 ms to maxPollingInterval) on an empty queue. A received message stays hidden
/// for messageLease, renewed at half that while the function runs, so a host that dies lets it reappear.
/// </summary>
internal sealed class QueueListener(FunctionDefinition function, string queue, IQueueStore store, IFunctionExecutor executor,
    QueuesOptions options, TimeProvider time, ILogger logger)
{
    private static readonly TimeSpan MinimumPollingInterval = TimeSpan.FromMilliseconds(100);
    private int _inFlight;
    private readonly SemaphoreSlim _completed = new(0);
    private readonly List<Task> _running = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Lease, byte> _leases = new();

    public async Task RunAsync(CancellationToken stopping)
    {
        await store.CreateQueueAsync(queue, stopping).ConfigureAwait(false);
        await store.CreateQueueAsync(PoisonMessage.PoisonQueueName(queue), stopping).ConfigureAwait(false);
        var delay = MinimumPollingInterval;
        // One renewal loop per listener (not a timer per message): every quarter lease it renews the
        // leases that are half spent.
        var renewals = RenewLeasesAsync(stopping);
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                while (Volatile.Read(ref _inFlight) > options.EffectiveNewBatchThreshold)
                    await _completed.WaitAsync(stopping).ConfigureAwait(false);

                IReadOnlyList<QueueMessage> messages;
                try
                {
                    messages = await store.GetAsync(queue, options.BatchSize, options.MessageLease, stopping).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Queue {Queue}: receive failed; retrying after {Delay}", queue, delay);
                    messages = [];
                }
                if (messages.Count == 0)
                {
                    await Task.Delay(delay, time, stopping).ConfigureAwait(false);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxPollingInterval.Ticks));
                    continue;
                }
                delay = MinimumPollingInterval;
                foreach (var message in messages)
                {
                    Interlocked.Increment(ref _inFlight);
                    var task = ProcessAsync(message, stopping);
                    lock (_running) _running.Add(task);
                    _ = task.ContinueWith(t =>
                    {
                        lock (_running) _running.Remove(t);
                        Interlocked.Decrement(ref _inFlight);
                        _completed.Release();
                    }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        Task[] remaining;
        lock (_running) remaining = [.. _running];
        await Task.WhenAll(remaining).ConfigureAwait(false);
        await renewals.ConfigureAwait(false);
    }

    private async Task ProcessAsync(QueueMessage message, CancellationToken stopping)
    {
        if (message.DequeueCount > options.MaxDequeueCount)
        {
            // Received more often than allowed without a recorded failure: the host died while running it.
            await MoveToPoisonAsync(message, message.PopReceipt,
                $"dequeue count {message.DequeueCount} exceeds maxDequeueCount {options.MaxDequeueCount} (the host stopped while processing it)").ConfigureAwait(false);
            return;
        }

        var lease = new Lease(message.Id, message.PopReceipt, time.GetUtcNow() + options.MessageLease / 2);
        _leases.TryAdd(lease, 0);
        Exception? failure = null;
        try
        {
            await executor.ExecuteAsync(function, message, new Dictionary<string, object?>
            {
                ["Id"] = message.Id,
                ["DequeueCount"] = message.DequeueCount,
                ["InsertedAt"] = message.InsertedAt,
                ["NextVisibleAt"] = message.NextVisibleAt,
                ["QueueName"] = queue,
            }, stopping).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            // Stop renewing before settling, and wait for a renewal in flight so its new receipt is the one we use.
            Task? renewing;
            lock (lease)
            {
                lease.Settled = true;
                renewing = lease.Renewing;
            }
            if (renewing is not null) await renewing.ConfigureAwait(false);
            _leases.TryRemove(lease, out _);
        }

        try
        {
            if (failure is null)
            {
                if (!await store.DeleteAsync(queue, message.Id, lease.PopReceipt, CancellationToken.None).ConfigureAwait(false))
                    logger.LogWarning("Queue {Queue}: message {Id} was received again before it could be deleted (its lease lapsed); it may run twice", queue, message.Id);
                return;
            }
            if (failure is OperationCanceledException && stopping.IsCancellationRequested)
            {
                // Shutting down: hand the message back at once rather than waiting out the lease.
                await store.UpdateVisibilityAsync(queue, message.Id, lease.PopReceipt, TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            logger.LogWarning(failure, "Queue {Queue}: function {Function} failed on message {Id} (attempt {Attempt} of {Max})",
                queue, function.Name, message.Id, message.DequeueCount, options.MaxDequeueCount);
            if (message.DequeueCount >= options.MaxDequeueCount)
                await MoveToPoisonAsync(message, lease.PopReceipt, Describe(failure)).ConfigureAwait(false);
            else
                await store.UpdateVisibilityAsync(queue, message.Id, lease.PopReceipt, options.VisibilityTimeout, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The message stays hidden until its lease runs out and then comes back: nothing is lost.
            logger.LogError(e, "Queue {Queue}: could not settle message {Id}", queue, message.Id);
        }
    }

    private static string Describe(Exception e)
    {
        // Type and message only: stack traces stay in the log, not in a queue other parties may read.
        return $"{e.GetType().FullName}: {e.Message}";
    }

    private async Task MoveToPoisonAsync(QueueMessage message, string popReceipt, string lastError)
    {
        // Credentials in the body (a partner's bearer token) do not travel on to the poison queue.
        var body = PoisonRedaction.Redact(message.Body);
        var poison = new PoisonMessage(queue, message.Id, message.DequeueCount, message.InsertedAt, time.GetUtcNow(), lastError, body);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(poison, JsonSerializerOptions.Web);
        var poisonQueue = PoisonMessage.PoisonQueueName(queue);
        if (bytes.Length > IQueueStore.MaxMessageBytes)
        {
            // Too big with its envelope: keep the body and put the error in the log instead of losing either.
            bytes = body;
            logger.LogError("Queue {Queue}: message {Id} moved to {Poison} without its envelope (too large); last error: {Error}", queue, message.Id, poisonQueue, lastError);
        }
        // Poison first, then delete: a crash in between leaves a duplicate, never a loss.
        await store.PutAsync(poisonQueue, bytes, TimeSpan.Zero, CancellationToken.None).ConfigureAwait(false);
        await store.DeleteAsync(queue, message.Id, popReceipt, CancellationToken.None).ConfigureAwait(false);
        logger.LogError("Queue {Queue}: message {Id} moved to {Poison} after {Count} attempts: {Error}", queue, message.Id, poisonQueue, message.DequeueCount, lastError);
    }

    private async Task RenewLeasesAsync(CancellationToken stopping)
    {
        var check = options.MessageLease / 4;
        try
        {
            while (true)
            {
                await Task.Delay(check, time, stopping).ConfigureAwait(false);
                var now = time.GetUtcNow();
                foreach (var lease in _leases.Keys)
                {
                    if (lease.RenewAt > now) continue;
                    TaskCompletionSource done;
                    lock (lease)
                    {
                        if (lease.Settled || lease.Renewing is { IsCompleted: false }) continue;
                        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        lease.Renewing = done.Task;
                    }
                    _ = RenewAsync(lease, done);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private async Task RenewAsync(Lease lease, TaskCompletionSource done)
    {
        try
        {
            var receipt = await store.UpdateVisibilityAsync(queue, lease.MessageId, lease.PopReceipt, options.MessageLease, CancellationToken.None).ConfigureAwait(false);
            if (receipt is null)
            {
                logger.LogWarning("Queue {Queue}: lost the lease on message {Id}", queue, lease.MessageId);
                lease.RenewAt = DateTimeOffset.MaxValue;
                return;
            }
            lease.PopReceipt = receipt;
            lease.RenewAt = time.GetUtcNow() + options.MessageLease / 2;
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Queue {Queue}: could not renew the lease on message {Id}; retrying", queue, lease.MessageId);
        }
        finally
        {
            done.TrySetResult();
        }
    }

    /// <summary>A received message's current pop receipt and when to renew it.</summary>
    private sealed class Lease(string messageId, string popReceipt, DateTimeOffset renewAt)
    {
        public string MessageId { get; } = messageId;
        public string PopReceipt { get; set; } = popReceipt;
        public DateTimeOffset RenewAt { get; set; } = renewAt;
        public bool Settled { get; set; }
        public Task? Renewing { get; set; }
    }
}
