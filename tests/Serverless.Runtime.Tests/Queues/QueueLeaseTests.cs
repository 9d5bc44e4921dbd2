using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Queues;

public sealed class QueueLeaseTests
{
    private const string ShortLease = """
        {
          "version": "2.0",
          "logging": { "logLevel": { "default": "Warning" } },
          "extensions": { "queues": { "batchSize": 2, "maxDequeueCount": 3, "maxPollingInterval": "00:00:00.100", "messageLease": "00:00:03" } }
        }
        """;

    public sealed class Runs
    {
        public int Count;
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public sealed class SlowFunctions(Runs runs)
    {
        [Function("Slow")]
        public async Task Slow([QueueTrigger("slow-work")] string message, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref runs.Count);
            runs.Started.TrySetResult();
            if (message == "until-stopped") await Task.Delay(Timeout.Infinite, cancellationToken);
            else await Task.Delay(TimeSpan.FromSeconds(9), cancellationToken); // three leases long
            // (a 3 s lease is renewed every 1.5 s; with 1 s, a 0.5 s stall of a loaded CI machine let it lapse and redeliver)
        }
    }

    [Fact]
    public async Task A_function_running_longer_than_the_lease_keeps_its_message_by_renewing()
    {
        var runs = new Runs();
        await using var host = await TestHost.StartAsync([typeof(SlowFunctions)], ShortLease, configure: b => b.Services.AddSingleton(runs));
        var queues = host.Services.GetRequiredService<IQueueStore>();
        await queues.PutAsync("slow-work", Encoding.UTF8.GetBytes("slow"));
        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("slow-work") == 0 && runs.Count > 0, "the message to complete", timeoutSeconds: 60);
        Assert.Equal(1, runs.Count);
    }

    [Fact]
    public async Task Stopping_the_host_hands_an_in_flight_message_back_at_once()
    {
        var runs = new Runs();
        using var data = new TempDirectory();
        var host = await TestHost.StartAsync([typeof(SlowFunctions)], ShortLease.Replace("00:00:03", "00:05:00"),
            configure: b => b.Services.AddSingleton(runs), dataDirectory: data.Path);
        var queues = host.Services.GetRequiredService<IQueueStore>();
        var id = await queues.PutAsync("slow-work", Encoding.UTF8.GetBytes("until-stopped"));
        await runs.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await host.DisposeAsync();

        // Visible again immediately, although the lease was five minutes.
        var store = Stores.OpenEmbeddedQueues(Path.Combine(data.Path, "queues.db"));
        var message = Assert.Single(await store.GetAsync("slow-work", 1, TimeSpan.FromMinutes(1)));
        Assert.Equal(id, message.Id);
        Assert.Equal(2, message.DequeueCount);
    }
}
