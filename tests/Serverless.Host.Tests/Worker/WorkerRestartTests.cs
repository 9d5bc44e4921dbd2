using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Serverless.Host.Tests.Queues;
using Serverless.Storage;

namespace Serverless.Host.Tests.Worker;

/// <summary>
/// The worker process killed with SIGKILL while a function runs: the host restarts it, the cut HTTP
/// request gets a 503 ProblemDetails, and a cut queue message is processed by the next worker, none lost.
/// </summary>
[Collection(SampleAppCollection.Name)]
public sealed class WorkerRestartTests(SampleAppHost host) : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);
    private readonly string _markers = Directory.CreateTempSubdirectory("serverless-host-restart-").FullName;

    [Fact]
    public async Task A_queue_message_cut_by_a_killed_worker_is_processed_after_the_restart()
    {
        string marker = Path.Combine(_markers, Guid.NewGuid().ToString("N"));
        await host.Queues.PutAsync("stall", Encoding.UTF8.GetBytes(marker));
        await EventuallyAsync(() => File.Exists(marker));
        int restarts = host.WorkerRestarts;
        int killed = host.WorkerProcessId;

        Process.GetProcessById(killed).Kill();   // SIGKILL: no chance to answer or clean up

        string output = await QueueTriggerTests.ReceiveOneAsync(host.Queues, "stall-done", Patience);
        Assert.Equal(marker + " after 2", output);
        Assert.NotEqual(killed, host.WorkerProcessId);
        Assert.True(host.WorkerRestarts > restarts);
        await QueueTriggerTests.AssertEmptyEventuallyAsync(host.Queues, "stall", Patience);
        Assert.Equal(0, await host.Queues.GetApproximateCountAsync("stall-poison"));
        Assert.Equal(0, await host.Queues.GetApproximateCountAsync("stall-done"));
    }

    [Fact]
    public async Task An_http_request_cut_by_a_killed_worker_is_a_503_problem_and_the_next_request_is_served()
    {
        string marker = Path.Combine(_markers, Guid.NewGuid().ToString("N"));
        Task<HttpResponseMessage> cut = host.Client.GetAsync("api/hang?marker=" + Uri.EscapeDataString(marker));
        await EventuallyAsync(() => File.Exists(marker));
        int killed = host.WorkerProcessId;

        Process.GetProcessById(killed).Kill();

        using HttpResponseMessage response = await cut;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using (JsonDocument problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()))
        {
            Assert.Equal(503, problem.RootElement.GetProperty("status").GetInt32());
        }
        // The next request waits for the restarted worker instead of failing.
        using HttpResponseMessage next = await host.Client.GetAsync("api/items/tools/7");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.NotEqual(killed, host.WorkerProcessId);
    }

    private static Task EventuallyAsync(Func<bool> condition) => Waits.UntilAsync(condition, Patience, "the expected effect never appeared");

    public void Dispose() => Directory.Delete(_markers, recursive: true);
}
