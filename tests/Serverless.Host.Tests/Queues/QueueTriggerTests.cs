using System.Text;
using Serverless.Storage;

namespace Serverless.Host.Tests.Queues;

/// <summary>
/// Queue triggers of the real sample app under the local host, over the embedded queue, with the sample's
/// host.json (maxDequeueCount 3, visibilityTimeout 0). Each test owns its queues and a unique message.
/// </summary>
[Collection(SampleAppCollection.Name)]
public sealed class QueueTriggerTests(SampleAppHost host)
{
    // A generous bound for a loaded machine: the tests wait for an outcome, they do not time it.
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_message_runs_once_and_its_output_binding_lands_in_the_output_queue()
    {
        string body = "hello-" + Guid.NewGuid().ToString("N");
        await host.Queues.PutAsync("upper", Encoding.UTF8.GetBytes(body));

        string output = await ReceiveOneAsync("upper-done");

        Assert.Equal(body.ToUpperInvariant() + " 1", output);
        await AssertEmptyEventuallyAsync("upper");
    }

    [Fact]
    public async Task A_failed_delivery_is_retried_and_the_retry_sees_its_dequeue_count()
    {
        string body = "flaky-" + Guid.NewGuid().ToString("N");
        await host.Queues.PutAsync("flaky", Encoding.UTF8.GetBytes(body));

        string output = await ReceiveOneAsync("flaky-done");

        Assert.Equal(body + " after 2", output);
        await AssertEmptyEventuallyAsync("flaky");
        Assert.Equal(0, await host.Queues.GetApproximateCountAsync("flaky-poison"));
    }

    [Fact]
    public async Task After_maxDequeueCount_failures_the_original_message_is_in_the_poison_queue()
    {
        string body = "doomed-" + Guid.NewGuid().ToString("N");
        await host.Queues.PutAsync("doomed", Encoding.UTF8.GetBytes(body));

        string poisoned = await ReceiveOneAsync("doomed-poison");

        Assert.Equal(body, poisoned);
        await AssertEmptyEventuallyAsync("doomed");
    }

    [Fact]
    public async Task A_message_that_names_its_producers_trace_context_is_consumed_in_that_trace()
    {
        var trace = System.Diagnostics.ActivityTraceId.CreateRandom();
        var producer = System.Diagnostics.ActivitySpanId.CreateRandom();
        var consumed = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == Serverless.Telemetry.ServerlessTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { if (a.TraceId == trace) consumed.Enqueue(a); },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        string body = $"{{\"traceParent\":\"00-{trace.ToHexString()}-{producer.ToHexString()}-01\",\"n\":\"{Guid.NewGuid():N}\"}}";
        await host.Queues.PutAsync("upper", Encoding.UTF8.GetBytes(body));

        Assert.Equal(body.ToUpperInvariant() + " 1", await ReceiveOneAsync("upper-done"));
        var span = Assert.Single(consumed);
        Assert.Equal("queue upper", span.DisplayName);
        Assert.Equal(System.Diagnostics.ActivityKind.Consumer, span.Kind);
        Assert.Equal(producer, span.ParentSpanId);
        Assert.Equal("upper", span.GetTagItem("serverless.queue"));
    }

    private Task<string> ReceiveOneAsync(string queue) => ReceiveOneAsync(host.Queues, queue, Patience);

    private Task AssertEmptyEventuallyAsync(string queue) => AssertEmptyEventuallyAsync(host.Queues, queue, Patience);

    internal static async Task<string> ReceiveOneAsync(IQueueStore queues, string queue, TimeSpan patience)
    {
        await queues.CreateQueueAsync(queue);
        using var timeout = new CancellationTokenSource(patience);
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

    internal static async Task AssertEmptyEventuallyAsync(IQueueStore queues, string queue, TimeSpan patience)
    {
        // The delete follows the output, so it may trail it by a moment.
        using var timeout = new CancellationTokenSource(patience);
        while (await queues.GetApproximateCountAsync(queue, timeout.Token) != 0)
        {
            await Task.Delay(100, timeout.Token);
        }
    }
}
