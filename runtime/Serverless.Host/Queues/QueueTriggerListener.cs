using System.Text;
using StoredMessage = Serverless.Storage.QueueMessage;

using Serverless.Telemetry;

namespace Serverless.Host.Queues;

/// <summary>
/// A queue trigger with the Functions host's semantics: it fetches up to batchSize messages, runs them in
/// parallel, fetches again when no more than newBatchThreshold still run, and backs off (100 ms doubling
/// to maxPollingInterval) on an empty queue. A received message stays hidden for the lease, renewed at
/// half of it while the function runs, so a dead host or worker lets it come back (at least once). A
/// failure hides it for visibilityTimeout; the maxDequeueCount-th failure moves the original body to
/// <c>&lt;queue&gt;-poison</c> (put first, then delete: a crash in between duplicates, never loses).
/// </summary>
internal sealed class QueueTriggerListener(
    FunctionDescriptor function,
    BindingDescriptor trigger,
    string queue,
    IQueueStore store,
    WorkerChannel channel,
    QueueOptions options,
    TimeSpan lease,
    ILogger log)
{
    private static readonly TimeSpan MinimumPollingInterval = TimeSpan.FromMilliseconds(100);
    private readonly SemaphoreSlim _slotFreed = new(0);
    private int _inFlight;

    public string PoisonQueue => queue + "-poison";

    public async Task RunAsync(CancellationToken stopping)
    {
        await store.CreateQueueAsync(queue, stopping);
        await store.CreateQueueAsync(PoisonQueue, stopping);
        var running = new List<Task>();
        TimeSpan delay = MinimumPollingInterval;
        long depthSampledAt = 0;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                while (Volatile.Read(ref _inFlight) > options.EffectiveNewBatchThreshold)
                {
                    await _slotFreed.WaitAsync(stopping);
                }
                running.RemoveAll(t => t.IsCompleted);
                // While the worker restarts, messages stay in the queue: a receive now would only hand them back.
                await channel.WaitReadyAsync(Timeout.InfiniteTimeSpan, stopping);

                IReadOnlyList<StoredMessage> messages;
                try
                {
                    messages = await store.GetAsync(queue, options.BatchSize, lease, stopping);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Logs.QueueReceiveFailed(log, queue, e.GetType().Name);
                    messages = [];
                }
                if (messages.Count == 0)
                {
                    await Task.Delay(delay, stopping);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxPollingInterval.Ticks));
                    continue;
                }
                delay = MinimumPollingInterval;
                var queueTag = new KeyValuePair<string, object?>("serverless.queue", queue);
                // The depth costs a storage call: sampled at most every 5 s while messages flow.
                if (System.Diagnostics.Stopwatch.GetElapsedTime(depthSampledAt) > TimeSpan.FromSeconds(5))
                {
                    depthSampledAt = System.Diagnostics.Stopwatch.GetTimestamp();
                    try { ServerlessTelemetry.QueueDepth.Record(await store.GetApproximateCountAsync(queue, stopping), queueTag); }
                    catch (Exception e) when (e is not OperationCanceledException) { Logs.QueueReceiveFailed(log, queue, e.GetType().Name); }
                }
                foreach (var m in messages) ServerlessTelemetry.QueueMessageAge.Record(Math.Max(0, (DateTimeOffset.UtcNow - m.InsertedAt).TotalSeconds), queueTag);
                foreach (StoredMessage message in messages)
                {
                    Interlocked.Increment(ref _inFlight);
                    running.Add(ProcessAsync(message, stopping));
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        await Task.WhenAll(running);
    }

    private async Task ProcessAsync(StoredMessage message, CancellationToken stopping)
    {
        try
        {
            await SettleAsync(message, stopping);
        }
        catch (Exception e)
        {
            // The message stays hidden until its lease ends and then comes back: nothing is lost.
            Logs.QueueSettleFailed(log, queue, message.Id, e.GetType().Name);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            _slotFreed.Release();
        }
    }

    private async Task SettleAsync(StoredMessage message, CancellationToken stopping)
    {
        if (message.DequeueCount > options.MaxDequeueCount)
        {
            // Delivered more often than allowed without a recorded failure: a host or worker died while it ran.
            await MoveToPoisonAsync(message, message.PopReceipt);
            return;
        }

        var receipt = new Receipt(message.PopReceipt);
        using var renewing = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        Task renewal = RenewAsync(message.Id, receipt, renewing.Token);
        InvocationResponse? response = null;
        bool workerGone = false;
        // The consumer span continues the producer's trace when the message names it (MessageTraceContext).
        MessageTraceContext.TryRead(message.Body.Span, out var producer);
        using var span = ServerlessTelemetry.Source.StartActivity($"queue {queue}", System.Diagnostics.ActivityKind.Consumer, producer,
            [new("serverless.queue", queue), new("faas.trigger", "queue")]);
        try
        {
            string invocationId = Guid.NewGuid().ToString();
            StreamingMessage reply = await channel.SendAsync(
                CorrelationKeys.Invocation(invocationId),
                new StreamingMessage { RequestId = invocationId, InvocationRequest = BuildInvocation(invocationId, message) },
                stopping);
            response = reply.InvocationResponse;
        }
        catch (WorkerUnavailableException)
        {
            workerGone = true;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            workerGone = true;
        }
        finally
        {
            await renewing.CancelAsync();
            await renewal;
        }

        if (workerGone)
        {
            // Hand it back at once for the next worker; this delivery counts as one attempt.
            await store.UpdateVisibilityAsync(queue, message.Id, receipt.Value, TimeSpan.Zero, CancellationToken.None);
            return;
        }
        if (response!.Result?.Status == StatusResult.Types.Status.Success)
        {
            // Outputs before the delete: a crash in between repeats the function, it never drops its output.
            await QueueOutputs.WriteAsync(function, response, store, CancellationToken.None);
            await store.DeleteAsync(queue, message.Id, receipt.Value, CancellationToken.None);
            return;
        }
        Logs.QueueInvocationFailed(log, function.Name, queue, message.Id, message.DequeueCount, options.MaxDequeueCount,
            response.Result?.Exception?.Type is { Length: > 0 } type ? type : "failure");
        if (message.DequeueCount >= options.MaxDequeueCount)
        {
            await MoveToPoisonAsync(message, receipt.Value);
        }
        else
        {
            await store.UpdateVisibilityAsync(queue, message.Id, receipt.Value, options.VisibilityTimeout, CancellationToken.None);
        }
    }

    private InvocationRequest BuildInvocation(string invocationId, StoredMessage message)
    {
        TypedData body = TryDecodeUtf8(message.Body.Span, out string? text)
            ? new TypedData { String = text }
            : new TypedData { Bytes = Google.Protobuf.ByteString.CopyFrom(message.Body.Span) };
        var invocation = new InvocationRequest
        {
            InvocationId = invocationId,
            FunctionId = function.Id,
            // The worker reads the trace context unconditionally: it must be present, even empty.
            TraceContext = new RpcTraceContext
            {
                TraceParent = System.Diagnostics.Activity.Current?.Id ?? string.Empty,
                TraceState = System.Diagnostics.Activity.Current?.TraceStateString ?? string.Empty,
            },
        };
        invocation.InputData.Add(new ParameterBinding { Name = trigger.Name, Data = body });
        function.AddBindingInputs(invocation);
        // The binding data the Functions host gives a queue trigger; numbers and times go as JSON.
        invocation.TriggerMetadata["QueueTrigger"] = body;
        invocation.TriggerMetadata["Id"] = new TypedData { String = message.Id };
        invocation.TriggerMetadata["PopReceipt"] = new TypedData { String = message.PopReceipt };
        invocation.TriggerMetadata["DequeueCount"] = new TypedData { Json = message.DequeueCount.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        invocation.TriggerMetadata["InsertionTime"] = new TypedData { Json = JsonSerializer.Serialize(message.InsertedAt) };
        invocation.TriggerMetadata["NextVisibleTime"] = new TypedData { Json = JsonSerializer.Serialize(message.NextVisibleAt) };
        return invocation;
    }

    private async Task RenewAsync(string messageId, Receipt receipt, CancellationToken settled)
    {
        try
        {
            while (true)
            {
                await Task.Delay(lease / 2, settled);
                string? renewed = await store.UpdateVisibilityAsync(queue, messageId, receipt.Value, lease, CancellationToken.None);
                if (renewed is null)
                {
                    Logs.QueueLeaseLost(log, queue, messageId);
                    return;
                }
                receipt.Value = renewed;
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task MoveToPoisonAsync(StoredMessage message, string popReceipt)
    {
        await store.PutAsync(PoisonQueue, message.Body, TimeSpan.Zero, CancellationToken.None);
        await store.DeleteAsync(queue, message.Id, popReceipt, CancellationToken.None);
        Logs.QueuePoisoned(log, queue, message.Id, message.DequeueCount, PoisonQueue);
    }

    private static bool TryDecodeUtf8(ReadOnlySpan<byte> bytes, out string? text)
    {
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            text = null;
            return false;
        }
    }

    /// <summary>The message's current pop receipt; a renewal replaces it.</summary>
    private sealed class Receipt(string value)
    {
        public volatile string Value = value;
    }
}
