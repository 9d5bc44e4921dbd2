using DurableTask.Core;
using DurableTask.Core.Exceptions;
using DurableTask.Core.History;

namespace Serverless.TaskHub.Sqlite.Tests;

/// <summary>
/// Leases: a worker that dies with work items locked is taken over by another service instance
/// on the same file once the leases expire, and a completion under a lost lease is refused.
/// </summary>
public sealed class CrashTests
{
    private const int StepCount = 20;

    /// <summary>
    /// Worker A hangs (seeded point) inside one activity of instance 1, holding that activity's
    /// lease, and inside one orchestration episode of instance 2, holding that instance's lease;
    /// then its service is closed without releasing anything and A is never stopped. A second
    /// service instance on the same file completes both after the leases expire, with every step's
    /// effect at least once.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task ASecondServiceCompletesWhatACrashedWorkerHeld(int seed)
    {
        var random = new Random(seed);
        var hangInActivityStep = random.Next(StepCount);
        var hangAfterCompletions = 1 + random.Next(StepCount - 1);
        var lease = TimeSpan.FromSeconds(2);
        await using var hub = new TaskHubHarness();
        var first = $"crash-act-{seed}-{Guid.NewGuid():N}";
        var second = $"crash-orch-{seed}-{Guid.NewGuid():N}";
        var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inActivity = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inEpisode = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var (_, serviceA) = await hub.StartWorkerAsync(lease, worker =>
        {
            worker.AddActivityDispatcherMiddleware(async (context, next) =>
            {
                var scheduled = context.GetProperty<TaskScheduledEvent>();
                if (context.GetProperty<OrchestrationInstance>().InstanceId == first && scheduled.Input == $"[\"{first}/{hangInActivityStep}\"]")
                {
                    inActivity.TrySetResult();
                    await hang.Task;
                }
                await next();
            });
            worker.AddOrchestrationDispatcherMiddleware(async (context, next) =>
            {
                var state = context.GetProperty<OrchestrationRuntimeState>();
                if (state.OrchestrationInstance?.InstanceId == second && state.Events.Count(e => e is TaskCompletedEvent) >= hangAfterCompletions)
                {
                    inEpisode.TrySetResult();
                    await hang.Task;
                }
                await next();
            });
        });
        try
        {
            var clientA = TaskHubHarness.Client(serviceA);
            await clientA.CreateOrchestrationInstanceAsync(typeof(Orchestrations.Steps), first, StepCount);
            await clientA.CreateOrchestrationInstanceAsync(typeof(Orchestrations.Steps), second, StepCount);
            await inActivity.Task.WaitAsync(TaskHubHarness.Patience);
            await inEpisode.Task.WaitAsync(TaskHubHarness.Patience);

            // The crash: the file is closed under worker A, whose leases stay in it.
            await serviceA.DisposeAsync();

            var (_, serviceB) = await hub.StartWorkerAsync(lease);
            var clientB = TaskHubHarness.Client(serviceB);
            foreach (var id in new[] { first, second })
            {
                var state = await TaskHubHarness.CompletionAsync(clientB, new OrchestrationInstance { InstanceId = id });
                Assert.Equal(OrchestrationStatus.Completed, state.OrchestrationStatus);
                Assert.Equal(StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture), state.Output);
                for (var i = 0; i < StepCount; i++) Assert.True(Activities.Count($"{id}/{i}") >= 1, $"{id} step {i} never ran");
            }
            // The hung activity never finished on A, so B ran it.
            Assert.Equal(1, Activities.Count($"{first}/{hangInActivityStep}"));
        }
        finally
        {
            hang.TrySetException(new OperationCanceledException("the crashed worker's hung calls end with the test"));
        }
    }

    /// <summary>
    /// Two service instances on one file, one injected clock: A's lease runs out, B locks the same
    /// work, and A's late completions (orchestration checkpoint and activity result) are refused
    /// without touching what B recorded.
    /// </summary>
    [Fact]
    public async Task ACompletionUnderALostLeaseIsRefused()
    {
        await using var hub = new TaskHubHarness();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var lease = TimeSpan.FromMinutes(1);
        var options = hub.Options(lease) with { TimeProvider = clock };
        await using var a = new SqliteOrchestrationService(options);
        await using var b = new SqliteOrchestrationService(options);
        await a.CreateIfNotExistsAsync();
        var instance = new OrchestrationInstance { InstanceId = "stale-" + Guid.NewGuid().ToString("N"), ExecutionId = Guid.NewGuid().ToString("N") };
        await a.CreateTaskOrchestrationAsync(new TaskMessage
        {
            OrchestrationInstance = instance,
            Event = new ExecutionStartedEvent(-1, "\"in\"") { Name = "Stale", Version = "", OrchestrationInstance = instance },
        });

        var itemA = await a.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(itemA);
        Assert.Null(await b.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None));
        clock.Advance(lease + TimeSpan.FromSeconds(1));
        var itemB = await b.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(itemB);
        Assert.Equal(instance.InstanceId, itemB.InstanceId);
        Assert.Single(itemB.NewMessages);

        var (stateA, scheduledA) = FirstEpisode(itemA, instance, "FromA");
        await Assert.ThrowsAsync<SessionAbortedException>(() =>
            a.CompleteTaskOrchestrationWorkItemAsync(itemA, itemA.OrchestrationRuntimeState, [scheduledA], [], [], null!, stateA));
        Assert.Equal("[]", await a.GetOrchestrationHistoryAsync(instance.InstanceId, null!));

        var (stateB, scheduledB) = FirstEpisode(itemB, instance, "FromB");
        await b.CompleteTaskOrchestrationWorkItemAsync(itemB, itemB.OrchestrationRuntimeState, [scheduledB], [], [], null!, stateB);
        var history = await b.GetOrchestrationHistoryAsync(instance.InstanceId, null!);
        Assert.Contains("FromB", history, StringComparison.Ordinal);
        Assert.DoesNotContain("FromA", history, StringComparison.Ordinal);
        Assert.Equal(OrchestrationStatus.Running, (await b.GetOrchestrationStateAsync(instance.InstanceId, null!)).OrchestrationStatus);

        // The activity B scheduled: A takes it, loses the lease to B, and A's result is refused.
        var activityA = await a.LockNextTaskActivityWorkItem(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal("FromB", ((TaskScheduledEvent)activityA.TaskMessage.Event).Name);
        clock.Advance(lease + TimeSpan.FromSeconds(1));
        var activityB = await b.LockNextTaskActivityWorkItem(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(activityB);
        await Assert.ThrowsAsync<SessionAbortedException>(() => a.CompleteTaskActivityWorkItemAsync(activityA, Result(instance, "from A")));
        await Assert.ThrowsAsync<SessionAbortedException>(() => a.RenewTaskActivityWorkItemLockAsync(activityA));
        await b.CompleteTaskActivityWorkItemAsync(activityB, Result(instance, "from B"));
        await Assert.ThrowsAsync<SessionAbortedException>(() => b.CompleteTaskActivityWorkItemAsync(activityB, Result(instance, "twice")));

        var next = await a.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        var completed = Assert.Single(next.NewMessages);
        Assert.Equal("\"from B\"", ((TaskCompletedEvent)completed.Event).Result);
        Assert.Null(await a.LockNextTaskActivityWorkItem(TimeSpan.FromMilliseconds(50), CancellationToken.None));
    }

    /// <summary>
    /// A restart after a crash: the leases of an instance whose process is gone are released when the next
    /// instance starts, long before they would expire (the clock never moves here); the leases of an instance
    /// that is alive are left alone.
    /// </summary>
    [Fact]
    public async Task A_starting_instance_releases_a_dead_instances_leases_at_once_and_never_a_live_ones()
    {
        await using var hub = new TaskHubHarness();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = hub.Options(TimeSpan.FromMinutes(10)) with { TimeProvider = clock };
        var a = new SqliteOrchestrationService(options);
        await a.CreateIfNotExistsAsync();
        await a.StartAsync();
        var running = await StartInstanceAsync(a, "held-activity");
        var waiting = await StartInstanceAsync(a, "held-episode");

        // A: one instance's first episode done and its activity locked, the other's episode locked.
        var first = await a.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal(running.InstanceId, first.InstanceId);
        var (state, scheduled) = FirstEpisode(first, running, "Held");
        await a.CompleteTaskOrchestrationWorkItemAsync(first, first.OrchestrationRuntimeState, [scheduled], [], [], null!, state);
        await a.ReleaseTaskOrchestrationWorkItemAsync(first);
        var activity = await a.LockNextTaskActivityWorkItem(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(activity);
        var episode = await a.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal(waiting.InstanceId, episode.InstanceId);

        // While A lives, an instance that starts beside it takes none of A's work.
        await using (var beside = new SqliteOrchestrationService(options))
        {
            await beside.StartAsync();
            Assert.Null(await beside.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None));
            Assert.Null(await beside.LockNextTaskActivityWorkItem(TimeSpan.FromMilliseconds(100), CancellationToken.None));
        }

        // The crash: A's file handles (and with them its owner lock) go, its leases stay in the file.
        await a.DisposeAsync();
        await using var b = new SqliteOrchestrationService(options);
        await b.StartAsync();

        var retaken = await b.LockNextTaskOrchestrationWorkItemAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(retaken);
        Assert.Equal(waiting.InstanceId, retaken.InstanceId);
        var rerun = await b.LockNextTaskActivityWorkItem(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.NotNull(rerun);
        Assert.Equal("Held", ((TaskScheduledEvent)rerun.TaskMessage.Event).Name);
        await b.CompleteTaskActivityWorkItemAsync(rerun, Result(running, "after the restart"));
        // The episode's messages were not consumed under A: B sees the instance's start again.
        Assert.Contains(retaken.NewMessages, m => m.Event is ExecutionStartedEvent);
    }

    private static async Task<OrchestrationInstance> StartInstanceAsync(SqliteOrchestrationService service, string name)
    {
        var instance = new OrchestrationInstance { InstanceId = name + "-" + Guid.NewGuid().ToString("N"), ExecutionId = Guid.NewGuid().ToString("N") };
        await service.CreateTaskOrchestrationAsync(new TaskMessage
        {
            OrchestrationInstance = instance,
            Event = new ExecutionStartedEvent(-1, "\"in\"") { Name = "Stale", Version = "", OrchestrationInstance = instance },
        });
        return instance;
    }

    /// <summary>What a first episode that schedules one activity would hand the service.</summary>
    private static (OrchestrationState State, TaskMessage Scheduled) FirstEpisode(TaskOrchestrationWorkItem item, OrchestrationInstance instance, string activityName)
    {
        var runtime = item.OrchestrationRuntimeState;
        runtime.AddEvent(new OrchestratorStartedEvent(-1));
        runtime.AddEvent(item.NewMessages[0].Event);
        var scheduled = new TaskScheduledEvent(0, activityName, "", "[]");
        runtime.AddEvent(scheduled);
        runtime.AddEvent(new OrchestratorCompletedEvent(-1));
        var state = new OrchestrationState
        {
            OrchestrationInstance = instance,
            Name = "Stale",
            OrchestrationStatus = OrchestrationStatus.Running,
            CreatedTime = DateTime.UtcNow,
        };
        return (state, new TaskMessage { OrchestrationInstance = instance, Event = scheduled });
    }

    private static TaskMessage Result(OrchestrationInstance instance, string value) =>
        new() { OrchestrationInstance = instance, Event = new TaskCompletedEvent(-1, 0, $"\"{value}\"") };

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private long _ticks = start.UtcTicks;

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
