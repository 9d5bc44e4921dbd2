using DurableTask.Core;

namespace Serverless.TaskHub.Sqlite.Tests;

/// <summary>The Durable Task programming model end to end: DurableTask.Core's worker and client over the SQLite service.</summary>
public sealed class OrchestrationTests
{
    private static OrchestrationInstance Id(string name) => new() { InstanceId = $"{name}-{Guid.NewGuid():N}" };

    [Fact]
    public async Task ActivitySequenceRunsInOrderAndCompletes()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.HelloSequence), Id("seq").InstanceId, "city");
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("\"hello city0,hello city1,hello city2,hello city3,hello city4\"", state.Output);
        Assert.Equal("\"city\"", state.Input);
        var history = await client.GetOrchestrationHistoryAsync(instance);
        Assert.Equal(5, CountOccurrences(history, "\"EventType\":4")); // TaskScheduled
        Assert.Equal(5, CountOccurrences(history, "\"EventType\":5")); // TaskCompleted
    }

    [Fact]
    public async Task FanOutOfHundredActivitiesFansIn()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.FanOut), Id("fan").InstanceId, 100);
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("5050", state.Output);
    }

    [Fact]
    public async Task DurableTimerFiresAfterItsTime()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.DurableTimer), Id("timer").InstanceId, 300);
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("true", state.Output);
        var history = await client.GetOrchestrationHistoryAsync(instance);
        Assert.Equal(1, CountOccurrences(history, "\"EventType\":11")); // TimerFired
    }

    [Fact]
    public async Task ExternalEventRaisedWhileWaitingWinsTheRaceWithItsDeadline()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        // A deadline far away: the event must win; the custom status tells when the orchestration waits.
        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.ApprovalWithDeadline), Id("approve").InstanceId, 600_000);
        await WaitForStatusAsync(client, instance, "\"waiting\"");
        await client.RaiseEventAsync(instance, "approve", "alice");
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("\"approved by alice\"", state.Output);
        Assert.Equal("\"approved\"", state.Status);
    }

    [Fact]
    public async Task WaitForExternalEventTimesOutOnItsDurableDeadline()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.ApprovalWithDeadline), Id("deadline").InstanceId, 300);
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("\"timed out\"", state.Output);
        Assert.Equal("\"timed out\"", state.Status);
    }

    [Fact]
    public async Task SubOrchestrationsRunAndReportToTheirParent()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.Parent), Id("parent").InstanceId, "x");
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("\"hello x0,hello x1,hello x2,hello x3,hello x4|55\"", state.Output);
        var child = await client.GetOrchestrationStateAsync(instance.InstanceId + ":seq");
        Assert.NotNull(child);
        Assert.Equal(OrchestrationStatus.Completed, child.OrchestrationStatus);
        Assert.Equal(instance.InstanceId, child.ParentInstance?.OrchestrationInstance.InstanceId);
    }

    [Fact]
    public async Task ContinueAsNewStartsFreshGenerationsUntilDone()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.Counter), Id("counter").InstanceId, 0);
        var state = await TaskHubHarness.CompletionAsync(client, new OrchestrationInstance { InstanceId = instance.InstanceId });

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("5", state.Output);
        Assert.Equal("4", state.Input);
        Assert.NotEqual(instance.ExecutionId, state.OrchestrationInstance.ExecutionId);
        // Only the last generation's history is kept: one ExecutionStarted, one activity.
        var history = await client.GetOrchestrationHistoryAsync(state.OrchestrationInstance);
        Assert.Equal(1, CountOccurrences(history, "\"EventType\":0,"));
        Assert.Equal(1, CountOccurrences(history, "\"EventType\":4"));
    }

    [Fact]
    public async Task RetryPolicyRetriesAFailingActivityUntilItSucceeds()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var key = Guid.NewGuid().ToString("N");
        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.RetryingCaller), Id("retry").InstanceId, key);
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
        Assert.Equal("\"ok after 3\"", state.Output);
        Assert.Equal(3, Activities.Count("attempt/" + key));
    }

    [Fact]
    public async Task TerminateEndsAWaitingOrchestration()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.WaitForever), Id("term").InstanceId, "x");
        await WaitForStatusAsync(client, instance, "\"waiting\"");
        await client.TerminateInstanceAsync(instance, "enough");
        var state = await TaskHubHarness.CompletionAsync(client, instance);

        Assert.Equal(OrchestrationStatus.Terminated, state.OrchestrationStatus);
        Assert.Contains("enough", state.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PurgeDeletesEndedInstancesAndKeepsLiveOnes()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);

        var done = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.HelloSequence), Id("purge-done").InstanceId, "p");
        await TaskHubHarness.CompletionAsync(client, done);
        var live = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.WaitForever), Id("purge-live").InstanceId, "p");
        await WaitForStatusAsync(client, live, "\"waiting\"");

        Assert.Equal(0, (await service.PurgeInstanceStateAsync(live.InstanceId)).DeletedInstanceCount);
        Assert.Equal(1, (await service.PurgeInstanceStateAsync(done.InstanceId)).DeletedInstanceCount);
        Assert.Null(await client.GetOrchestrationStateAsync(done.InstanceId));
        Assert.Equal("[]", await client.GetOrchestrationHistoryAsync(done));
        Assert.NotNull(await client.GetOrchestrationStateAsync(live.InstanceId));

        // Purge by filter: only ended instances go, the live one stays.
        await client.TerminateInstanceAsync(live, "done");
        await TaskHubHarness.CompletionAsync(client, live);
        var other = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.WaitForever), Id("purge-other").InstanceId, "p");
        await WaitForStatusAsync(client, other, "\"waiting\"");
        var purged = await service.PurgeInstanceStateAsync(new PurgeInstanceFilter(DateTime.UtcNow.AddHours(-1), null, null));
        Assert.Equal(1, purged.DeletedInstanceCount);
        Assert.Null(await client.GetOrchestrationStateAsync(live.InstanceId));
        Assert.NotNull(await client.GetOrchestrationStateAsync(other.InstanceId));
    }

    [Fact]
    public async Task StateIsPendingBeforeAWorkerRunsAndWaitTimesOutWithNull()
    {
        await using var hub = new TaskHubHarness();
        await using var service = new SqliteOrchestrationService(hub.Options());
        await service.CreateIfNotExistsAsync();
        var client = TaskHubHarness.Client(service);

        var instance = await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.HelloSequence), Id("pending").InstanceId, "x");
        var state = await client.GetOrchestrationStateAsync(instance);
        Assert.Equal(OrchestrationStatus.Pending, state.OrchestrationStatus);
        Assert.Equal(typeof(Orchestrations.HelloSequence).FullName, state.Name);
        Assert.Null(await client.WaitForOrchestrationAsync(instance, TimeSpan.FromMilliseconds(100)));
        Assert.Null(await client.GetOrchestrationStateAsync("no-such-instance"));

        await Assert.ThrowsAsync<DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException>(() =>
            client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.HelloSequence), instance.InstanceId, "again"));
    }

    [Fact]
    public async Task QueryPagesInstancesByStatusAndPrefix()
    {
        await using var hub = new TaskHubHarness();
        var (_, service) = await hub.StartWorkerAsync();
        var client = TaskHubHarness.Client(service);
        var prefix = "query-" + Guid.NewGuid().ToString("N")[..8];
        for (var i = 0; i < 5; i++)
            await TaskHubHarness.CompletionAsync(client, await client.CreateOrchestrationInstanceAsync(typeof(Orchestrations.HelloSequence), $"{prefix}-{i}", "q"));

        var seen = new List<string>();
        string? token = null;
        do
        {
            var page = await service.GetOrchestrationWithQueryAsync(new DurableTask.Core.Query.OrchestrationQuery
            {
                InstanceIdPrefix = prefix, PageSize = 2, ContinuationToken = token, RuntimeStatus = [OrchestrationStatus.Completed],
            }, CancellationToken.None);
            Assert.True(page.OrchestrationState.Count <= 2);
            seen.AddRange(page.OrchestrationState.Select(s => s.OrchestrationInstance.InstanceId));
            token = page.ContinuationToken;
        } while (token is not null);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"{prefix}-{i}"), seen);
    }

    internal static async Task WaitForStatusAsync(TaskHubClient client, OrchestrationInstance instance, string status)
    {
        using var guard = new CancellationTokenSource(TaskHubHarness.Patience);
        while (true)
        {
            var state = await client.GetOrchestrationStateAsync(instance.InstanceId);
            if (state?.Status == status) return;
            await Task.Delay(20, guard.Token);
        }
    }

    private static int CountOccurrences(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
