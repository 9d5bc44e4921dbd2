using Serverless.Durable.Backends;
using Serverless.Durable.Core;
using Serverless.Durable.History;
using Serverless.Durable.Tests.Support;

namespace Serverless.Durable.Tests.Backends;

/// <summary>Lease takeover at the storage level, with a clock the test moves.</summary>
public sealed class LeaseTests
{
    public static TheoryData<string> Backends => TestHub.Backends;

    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);

    [Theory, MemberData(nameof(Backends))]
    public async Task An_expired_episode_lease_is_taken_over_and_the_old_holder_cannot_commit(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var clock = new ManualClock();
        await using var store = DurableTaskHost.CreateBackend(hub.Options, clock);
        await store.InitializeAsync(default);
        var now = clock.Now.UtcDateTime;
        await store.CreateInstanceAsync("lease-1", new ExecutionStarted(now, "X", "e1", null), now, default);

        var first = await store.LockNextOrchestrationAsync(Lease, default);
        Assert.NotNull(first);
        Assert.Null(await store.LockNextOrchestrationAsync(Lease, default)); // held

        clock.Now += Lease + TimeSpan.FromSeconds(1);
        var second = await store.LockNextOrchestrationAsync(Lease, default);
        Assert.NotNull(second); // the expired lease was taken over
        Assert.Equal("lease-1", second.InstanceId);

        var outcome = new EpisodeOutcome { Consumed = [true], Status = OrchestrationRuntimeStatus.Running };
        outcome.NewEvents.Add(new OrchestratorStarted(now));
        outcome.NewEvents.Add(first!.Messages[0].Event);
        await Assert.ThrowsAsync<LeaseLostException>(() => store.CompleteOrchestrationAsync(first, outcome, default));
        Assert.Empty(await store.GetHistoryAsync("lease-1", default)); // nothing of the stale episode was written

        await store.CompleteOrchestrationAsync(second, outcome, default);
        Assert.Equal(2, (await store.GetHistoryAsync("lease-1", default)).Count);
        Assert.Equal(OrchestrationRuntimeStatus.Running, (await store.GetInstanceAsync("lease-1", default))!.RuntimeStatus);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task A_taken_over_activity_records_its_result_once(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var clock = new ManualClock();
        await using var store = DurableTaskHost.CreateBackend(hub.Options, clock);
        await store.InitializeAsync(default);
        var now = clock.Now.UtcDateTime;
        await store.CreateInstanceAsync("lease-2", new ExecutionStarted(now, "X", "e1", null), now, default);
        var episode = (await store.LockNextOrchestrationAsync(Lease, default))!;
        var outcome = new EpisodeOutcome { Consumed = [true], Status = OrchestrationRuntimeStatus.Running };
        var scheduled = new TaskScheduled(now, 0, "Work", null);
        outcome.NewEvents.Add(episode.Messages[0].Event);
        outcome.NewEvents.Add(scheduled);
        outcome.NewActivities.Add(scheduled);
        await store.CompleteOrchestrationAsync(episode, outcome, default);

        var slow = Assert.Single(await store.LockNextActivitiesAsync(10, Lease, default));
        Assert.Empty(await store.LockNextActivitiesAsync(10, Lease, default));
        clock.Now += Lease + TimeSpan.FromSeconds(1);
        var retry = Assert.Single(await store.LockNextActivitiesAsync(10, Lease, default));
        Assert.Equal(slow.Id, retry.Id);
        Assert.Equal(2, retry.DequeueCount);

        // Both runs finish; only the current lease holder's result is recorded.
        await store.CompleteActivitiesAsync([(retry, new TaskCompleted(now, 0, "\"second\""))], default);
        await store.CompleteActivitiesAsync([(slow, new TaskCompleted(now, 0, "\"first\""))], default);
        var next = (await store.LockNextOrchestrationAsync(Lease, default))!;
        var result = Assert.IsType<TaskCompleted>(Assert.Single(next.Messages).Event);
        Assert.Equal("\"second\"", result.Result);
    }
}
