using System.Diagnostics;
using System.Text;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Queues;

/// <summary>A real host process is killed while a message is being processed; the message is not lost.</summary>
public sealed class QueueCrashRecoveryTests
{
    private const string HostJson = """
        {
          "version": "2.0",
          "logging": { "logLevel": { "default": "Warning" } },
          "extensions": { "queues": { "batchSize": 1, "maxDequeueCount": 5, "maxPollingInterval": "00:00:00.200", "messageLease": "00:00:02" } }
        }
        """;

    [Fact]
    public async Task A_message_survives_a_host_killed_mid_processing()
    {
        using var data = new TempDirectory();
        var hostJson = Path.Combine(data.Path, "host.json");
        await File.WriteAllTextAsync(hostJson, HostJson);
        string[] args = ["host", "--data-dir", data.Path, "--host-json", hostJson, "--port", "0"];

        var queues = Stores.OpenEmbeddedQueues(Path.Combine(data.Path, "queues.db"));
        var id = await queues.PutAsync("crash-test", Encoding.UTF8.GetBytes("precious"));

        // First host: starts the function, which hangs; then the process is killed outright.
        using (var doomed = TestWorkerProcess.Start(args, new Dictionary<string, string> { ["WORKER_MODE"] = "block" }))
        {
            try
            {
                await Eventually.HoldsAsync(() => File.Exists(Path.Combine(data.Path, $"started-{id}-1")), "the first attempt to start", timeoutSeconds: 60);
            }
            finally
            {
                doomed.Kill(entireProcessTree: true);
                await doomed.WaitForExitAsync();
            }
        }
        Assert.False(File.Exists(Path.Combine(data.Path, $"done-{id}")));
        Assert.Equal(1, await queues.GetApproximateCountAsync("crash-test")); // still there, hidden by its lease

        // Second host: the lease runs out, the message comes back and completes.
        using var survivor = TestWorkerProcess.Start(args);
        try
        {
            await Eventually.HoldsAsync(() => File.Exists(Path.Combine(data.Path, $"done-{id}")), "the retried attempt to finish", timeoutSeconds: 60);
            Assert.True(File.Exists(Path.Combine(data.Path, $"started-{id}-2")));
            Assert.Equal("precious", await File.ReadAllTextAsync(Path.Combine(data.Path, $"done-{id}")));
            await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("crash-test") == 0, "the message to be deleted");
            Assert.Equal(0, await queues.GetApproximateCountAsync("crash-test-poison"));
        }
        finally
        {
            survivor.Kill(entireProcessTree: true);
            await survivor.WaitForExitAsync();
        }
    }
}
