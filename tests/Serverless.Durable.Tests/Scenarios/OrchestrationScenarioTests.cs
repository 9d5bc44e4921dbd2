using System.Collections.Concurrent;
using Serverless.Durable.History;
using Serverless.Durable.Tests.Support;

namespace Serverless.Durable.Tests.Scenarios;

/// <summary>The acceptance scenarios, each on SQLite and on PostgreSQL.</summary>
public sealed class OrchestrationScenarioTests
{
    public static TheoryData<string> Backends => TestHub.Backends;

    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddActivity<string, string>("SayHello", name => $"Hello {name}!")
        .AddActivity<int, long>("Square", x => (long)x * x)
        .AddOrchestrator("HelloCities", async ctx => new[]
        {
            await ctx.CallActivityAsync<string>("SayHello", "Tokyo"),
            await ctx.CallActivityAsync<string>("SayHello", "Seattle"),
            await ctx.CallActivityAsync<string>("SayHello", "London"),
        })
        .AddOrchestrator<int, long>("FanOut", async (ctx, n) =>
        {
            var tasks = new Task<long>[n];
            for (var i = 0; i < n; i++) tasks[i] = ctx.CallActivityAsync<long>("Square", i + 1);
            var results = await Task.WhenAll(tasks);
            return results.Sum();
        });

    [Theory, MemberData(nameof(Backends))]
    public async Task Chaining_returns_the_activities_results_in_order(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(Registry());
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("HelloCities");
        var done = await host.Client.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal(["Hello Tokyo!", "Hello Seattle!", "Hello London!"], done.ReadOutputAs<string[]>()!);
        var history = await host.Client.GetHistoryAsync(id);
        Assert.Equal(3, history.OfType<TaskScheduled>().Count());
        Assert.Equal(3, history.OfType<TaskCompleted>().Count());
        Assert.IsType<ExecutionCompleted>(history[^1]);
        Assert.True(done.LastUpdatedAt >= done.CreatedAt);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Fan_out_fan_in_of_1000_activities_sums_every_result_once(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(Registry());
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("FanOut", 1000);
        var done = await host.Client.WaitAsync(id, 120);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        // Sum of squares 1..n = n(n+1)(2n+1)/6.
        Assert.Equal(1000L * 1001 * 2001 / 6, done.ReadOutputAs<long>());
        var history = await host.Client.GetHistoryAsync(id);
        Assert.Equal(1000, history.OfType<TaskCompleted>().Select(c => c.TaskScheduledId).Distinct().Count());
        Assert.Equal(1000, history.OfType<TaskCompleted>().Count());
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Retries_back_off_on_durable_timers_and_succeed(string backend)
    {
        var attempts = new ConcurrentDictionary<string, int>();
        var registry = new DurableTaskRegistry()
            .AddActivity<int, string>("Flaky", (ctx, failures) =>
            {
                var n = attempts.AddOrUpdate(ctx.InstanceId, 1, (_, v) => v + 1);
                if (n <= failures) throw new InvalidOperationException($"attempt {n} fails");
                return Task.FromResult($"ok after {n}");
            })
            .AddOrchestrator<int, string>("Retrying", (ctx, failures) => ctx.CallActivityAsync<string>("Flaky", failures,
                TaskOptions.FromRetryPolicy(new RetryPolicy(4, TimeSpan.FromMilliseconds(100), backoffCoefficient: 2))));
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(registry);

        var ok = await host.Client.ScheduleNewOrchestrationInstanceAsync("Retrying", 2);
        var done = await host.Client.WaitAsync(ok);
        Assert.Equal("ok after 3", done.ReadOutputAs<string>());
        var history = await host.Client.GetHistoryAsync(ok);
        var timers = history.OfType<TimerCreated>().ToList();
        Assert.Equal(2, timers.Count);
        // The second wait is twice the first (backoff coefficient 2): 100 ms then 200 ms.
        var waits = timers.Select(t => t.FireAt - t.Timestamp).ToList();
        Assert.Equal(TimeSpan.FromMilliseconds(100), waits[0]);
        Assert.Equal(TimeSpan.FromMilliseconds(200), waits[1]);

        var exhausted = await host.Client.ScheduleNewOrchestrationInstanceAsync("Retrying", 10);
        var failed = await host.Client.WaitAsync(exhausted);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, failed.RuntimeStatus);
        Assert.Equal(4, attempts[exhausted]);
        Assert.Contains("attempt 4 fails", failed.FailureDetails!.ToString());
        Assert.True(failed.FailureDetails.IsCausedBy<InvalidOperationException>());
    }

    [Fact]
    public void Retry_policy_delays_follow_the_backoff_and_cap()
    {
        var policy = new RetryPolicy(10, TimeSpan.FromSeconds(1), backoffCoefficient: 3, maxRetryInterval: TimeSpan.FromSeconds(20));
        Assert.Equal(TimeSpan.FromSeconds(1), policy.DelayBeforeAttempt(2));
        Assert.Equal(TimeSpan.FromSeconds(3), policy.DelayBeforeAttempt(3));
        Assert.Equal(TimeSpan.FromSeconds(9), policy.DelayBeforeAttempt(4));
        Assert.Equal(TimeSpan.FromSeconds(20), policy.DelayBeforeAttempt(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryPolicy(0, TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryPolicy(2, TimeSpan.FromSeconds(1), backoffCoefficient: 0.5));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task A_durable_timer_fires_after_the_host_restarts(string backend)
    {
        var registry = () => new DurableTaskRegistry().AddOrchestrator("Sleeper", async ctx =>
        {
            var start = ctx.CurrentUtcDateTime;
            ctx.SetCustomStatus("sleeping");
            await ctx.CreateTimer(TimeSpan.FromSeconds(1.5));
            return (ctx.CurrentUtcDateTime - start).TotalMilliseconds;
        });
        await using var hub = TestHub.Create(backend);
        var first = await hub.StartAsync(registry());
        var id = await first.Client.ScheduleNewOrchestrationInstanceAsync("Sleeper");
        await first.Client.WaitUntilAsync(id, m => m.SerializedCustomStatus == "\"sleeping\"");
        await first.DisposeAsync(); // the host goes away while the timer is pending

        var second = await hub.StartAsync(registry());
        var done = await second.Client.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.True(done.ReadOutputAs<double>() >= 1500);
        var history = await second.Client.GetHistoryAsync(id);
        Assert.Single(history.OfType<TimerFired>());
    }

    private static DurableTaskRegistry EventRegistry() => new DurableTaskRegistry()
        .AddOrchestrator("LateWaiter", async ctx =>
        {
            // The event is raised before this timer fires, so it is buffered before the wait starts.
            await ctx.CreateTimer(TimeSpan.FromMilliseconds(300));
            return await ctx.WaitForExternalEvent<string>("Approval");
        })
        .AddOrchestrator("Waiter", async ctx =>
        {
            ctx.SetCustomStatus("waiting");
            return await ctx.WaitForExternalEvent<string>("approval");
        })
        .AddOrchestrator("TimedWaiter", async ctx =>
        {
            try
            {
                return await ctx.WaitForExternalEvent<string>("Approval", TimeSpan.FromMilliseconds(ctx.GetInput<int>()));
            }
            catch (TimeoutException)
            {
                return "timed out";
            }
        });

    [Theory, MemberData(nameof(Backends))]
    public async Task External_events_before_and_after_the_wait_and_with_timeout(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(EventRegistry());
        var client = host.Client;

        var early = await client.ScheduleNewOrchestrationInstanceAsync("LateWaiter");
        await client.RaiseEventAsync(early, "Approval", "early bird");

        var late = await client.ScheduleNewOrchestrationInstanceAsync("Waiter");
        await client.WaitUntilAsync(late, m => m.SerializedCustomStatus == "\"waiting\"");
        await client.RaiseEventAsync(late, "APPROVAL", "on time"); // names are case-insensitive

        var timedOut = await client.ScheduleNewOrchestrationInstanceAsync("TimedWaiter", 200);
        var answered = await client.ScheduleNewOrchestrationInstanceAsync("TimedWaiter", 30_000);
        await client.WaitUntilAsync(answered, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running);
        await client.RaiseEventAsync(answered, "Approval", "in time");

        Assert.Equal("early bird", (await client.WaitAsync(early)).ReadOutputAs<string>());
        Assert.Equal("on time", (await client.WaitAsync(late)).ReadOutputAs<string>());
        Assert.Equal("timed out", (await client.WaitAsync(timedOut)).ReadOutputAs<string>());
        Assert.Equal("in time", (await client.WaitAsync(answered)).ReadOutputAs<string>());
        await Assert.ThrowsAsync<OrchestrationNotFoundException>(() => client.RaiseEventAsync("no-such-instance", "x"));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Sub_orchestrations_return_outputs_and_propagate_failures(string backend)
    {
        var registry = Registry()
            .AddActivity<string, string>("Boom", (Func<string?, string>)(_ => throw new InvalidOperationException("child exploded")))
            .AddOrchestrator("Failing", async ctx => await ctx.CallActivityAsync<string>("Boom"))
            .AddOrchestrator("Parent", async ctx =>
            {
                var a = await ctx.CallSubOrchestratorAsync<string[]>("HelloCities");
                var b = await ctx.CallSubOrchestratorAsync<long>("FanOut", 10, new SubOrchestrationOptions(InstanceId: ctx.InstanceId + "-fan"));
                string failure;
                try
                {
                    await ctx.CallSubOrchestratorAsync("Failing");
                    failure = "none";
                }
                catch (TaskFailedException ex)
                {
                    failure = ex.FailureDetails.ErrorMessage;
                }
                return $"{a.Length}|{b}|{failure}";
            });
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(registry);
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Parent", options: new StartOrchestrationOptions("parent-1"));
        var done = await host.Client.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
        Assert.Equal("3|385|Task 'Boom' (#0) failed with an unhandled exception: child exploded", done.ReadOutputAs<string>());
        var child = await host.Client.GetInstanceAsync("parent-1-fan");
        Assert.Equal(OrchestrationRuntimeStatus.Completed, child!.RuntimeStatus);
        Assert.Equal(385, child.ReadOutputAs<long>());
        var history = await host.Client.GetHistoryAsync(id);
        Assert.Equal(3, history.OfType<SubOrchestrationInstanceCreated>().Count());
        Assert.Equal(2, history.OfType<SubOrchestrationInstanceCompleted>().Count());
        Assert.Single(history.OfType<SubOrchestrationInstanceFailed>());
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task ContinueAsNew_keeps_history_bounded(string backend)
    {
        var registry = Registry().AddOrchestrator<int, int>("Counter", async (ctx, n) =>
        {
            await ctx.CallActivityAsync<string>("SayHello", n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (n < 30)
            {
                ctx.ContinueAsNew(n + 1);
                return -1;
            }
            return n;
        });
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(registry);
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Counter", 0);
        var done = await host.Client.WaitAsync(id);
        Assert.Equal(30, done.ReadOutputAs<int>());
        Assert.Equal(30, done.ReadInputAs<int>());
        var history = await host.Client.GetHistoryAsync(id);
        // Only the last execution remains: started, one activity, completed (not 31 executions' worth).
        Assert.InRange(history.Count, 5, 8);
        Assert.Single(history.OfType<ExecutionStarted>());
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Terminate_suspend_resume_and_purge(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(EventRegistry());
        var client = host.Client;

        var doomed = await client.ScheduleNewOrchestrationInstanceAsync("Waiter");
        await client.WaitUntilAsync(doomed, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running);
        await client.TerminateInstanceAsync(doomed, "operator said stop");
        var terminated = await client.WaitAsync(doomed);
        Assert.Equal(OrchestrationRuntimeStatus.Terminated, terminated.RuntimeStatus);
        Assert.Equal("operator said stop", terminated.ReadOutputAs<string>());

        var paused = await client.ScheduleNewOrchestrationInstanceAsync("Waiter");
        await client.WaitUntilAsync(paused, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running);
        await client.SuspendInstanceAsync(paused, "maintenance");
        await client.WaitUntilAsync(paused, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Suspended);
        await client.RaiseEventAsync(paused, "approval", "held");
        await Task.Delay(300); // the event is queued but not processed while suspended
        Assert.Equal(OrchestrationRuntimeStatus.Suspended, (await client.GetInstanceAsync(paused))!.RuntimeStatus);
        Assert.False(await client.PurgeInstanceAsync(paused)); // not finished: not purged
        await client.ResumeInstanceAsync(paused);
        var resumed = await client.WaitAsync(paused);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, resumed.RuntimeStatus);
        Assert.Equal("held", resumed.ReadOutputAs<string>());
        var history = await client.GetHistoryAsync(paused);
        Assert.Single(history.OfType<ExecutionSuspended>());
        Assert.Single(history.OfType<ExecutionResumed>());

        Assert.True(await client.PurgeInstanceAsync(paused));
        Assert.Null(await client.GetInstanceAsync(paused));
        Assert.Empty(await client.GetHistoryAsync(paused));
        Assert.False(await client.PurgeInstanceAsync(paused));
        Assert.Equal(1, await client.PurgeInstancesAsync(new PurgeInstancesFilter(Statuses: [OrchestrationRuntimeStatus.Terminated])));
        Assert.Null(await client.GetInstanceAsync(doomed));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task A_running_instance_id_is_refused_and_a_finished_one_restarts(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(EventRegistry());
        var client = host.Client;
        await client.ScheduleNewOrchestrationInstanceAsync("Waiter", options: new("order-42"));
        var refused = await Assert.ThrowsAsync<OrchestrationAlreadyExistsException>(
            () => client.ScheduleNewOrchestrationInstanceAsync("Waiter", options: new("order-42")));
        Assert.Equal("order-42", refused.InstanceId);
        await client.RaiseEventAsync("order-42", "approval", "first");
        Assert.Equal("first", (await client.WaitAsync("order-42")).ReadOutputAs<string>());

        await client.ScheduleNewOrchestrationInstanceAsync("Waiter", options: new("order-42"));
        await client.RaiseEventAsync("order-42", "approval", "second");
        Assert.Equal("second", (await client.WaitAsync("order-42")).ReadOutputAs<string>());
        Assert.Single((await client.GetHistoryAsync("order-42")).OfType<EventRaised>());
        await Assert.ThrowsAsync<ArgumentException>(() => client.ScheduleNewOrchestrationInstanceAsync("Waiter", options: new("bad/id")));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Non_determinism_fails_the_instance_naming_the_step_and_both_names(string backend)
    {
        var useB = false;
        var registry = new DurableTaskRegistry()
            .AddActivity<string, string>("A", _ => "a")
            .AddActivity<string, string>("B", _ => "b")
            .AddOrchestrator("Fickle", async ctx =>
            {
                await ctx.CallActivityAsync<string>(Volatile.Read(ref useB) ? "B" : "A");
                return await ctx.WaitForExternalEvent<string>("go");
            });
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(registry);
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Fickle");
        await host.Client.WaitUntilAsync(id, m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running);
        // Wait for the activity's result to be recorded, then "deploy" different code.
        for (var i = 0; i < 500 && !(await host.Client.GetHistoryAsync(id)).OfType<TaskCompleted>().Any(); i++) await Task.Delay(10);
        Volatile.Write(ref useB, true);
        await host.Client.RaiseEventAsync(id, "go", "x");
        var failed = await host.Client.WaitAsync(id);
        Assert.Equal(OrchestrationRuntimeStatus.Failed, failed.RuntimeStatus);
        Assert.Equal(typeof(NonDeterministicOrchestrationException).FullName, failed.FailureDetails!.ErrorType);
        Assert.Contains("step 0", failed.FailureDetails.ErrorMessage);
        Assert.Contains("activity 'A'", failed.FailureDetails.ErrorMessage);
        Assert.Contains("activity 'B'", failed.FailureDetails.ErrorMessage);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Query_by_status_and_creation_time_pages_through_instances(string backend)
    {
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(Registry().AddOrchestrator("Idle", ctx => ctx.WaitForExternalEvent<object?>("never")!));
        var client = host.Client;
        var before = DateTime.UtcNow.AddSeconds(-1);
        var completed = new List<string>();
        for (var i = 0; i < 5; i++) completed.Add(await client.ScheduleNewOrchestrationInstanceAsync("HelloCities", options: new($"q-done-{i}")));
        for (var i = 0; i < 3; i++) await client.ScheduleNewOrchestrationInstanceAsync("Idle", options: new($"q-idle-{i}"));
        foreach (var id in completed) await client.WaitAsync(id);
        for (var i = 0; i < 3; i++) await client.WaitUntilAsync($"q-idle-{i}", m => m.RuntimeStatus == OrchestrationRuntimeStatus.Running);

        var seen = new List<string>();
        var query = new OrchestrationQuery(Statuses: [OrchestrationRuntimeStatus.Completed], CreatedFrom: before, PageSize: 2);
        var pages = 0;
        while (true)
        {
            var page = await client.QueryInstancesAsync(query);
            pages++;
            seen.AddRange(page.Instances.Select(m => m.InstanceId));
            Assert.All(page.Instances, m => Assert.Equal(OrchestrationRuntimeStatus.Completed, m.RuntimeStatus));
            if (page.ContinuationToken is null) break;
            query = query with { ContinuationToken = page.ContinuationToken };
        }
        Assert.Equal(3, pages);
        Assert.Equal(completed.Order(StringComparer.Ordinal), seen);
        var running = await client.GetAllInstancesAsync(new OrchestrationQuery(Statuses: [OrchestrationRuntimeStatus.Running])).ToListAsync();
        Assert.Equal(3, running.Count);
        var none = await client.QueryInstancesAsync(new OrchestrationQuery(CreatedTo: before));
        Assert.Empty(none.Instances);
        var prefixed = await client.QueryInstancesAsync(new OrchestrationQuery(InstanceIdPrefix: "q-idle-"));
        Assert.Equal(3, prefixed.Instances.Count);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Large_payloads_go_to_the_blob_store_and_history_keeps_references(string backend)
    {
        var blobs = new InMemoryBlobStore();
        var registry = new DurableTaskRegistry()
            .AddActivity<string, string>("Echo", s => s + s)
            .AddOrchestrator<string, string>("Big", async (ctx, s) => await ctx.CallActivityAsync<string>("Echo", s));
        await using var hub = TestHub.Create(backend, o => o with { LargePayloadThreshold = 1000 });
        var host = await hub.StartAsync(registry, blobs);
        var input = new string('x', 5000);
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Big", input);
        var done = await host.Client.WaitAsync(id);
        Assert.Equal(input + input, done.ReadOutputAs<string>());
        Assert.Equal(input, done.ReadInputAs<string>());
        var history = await host.Client.GetHistoryAsync(id);
        Assert.StartsWith("@blob:", history.OfType<ExecutionStarted>().Single().Input);
        Assert.StartsWith("@blob:", history.OfType<TaskCompleted>().Single().Result);
        Assert.StartsWith("@blob:", history.OfType<ExecutionCompleted>().Single().Result);
        Assert.True(blobs.Count >= 4);
        Assert.True(await host.Client.PurgeInstanceAsync(id));
        Assert.True(blobs.Count == 0, string.Join(",", await blobs.ListAsync().Select(b => b.Name).ToListAsync())); // purge removes the instance's payload blobs too
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Custom_status_guid_and_time_are_replay_safe(string backend)
    {
        var registry = Registry().AddOrchestrator("Stable", async ctx =>
        {
            var g1 = ctx.NewGuid();
            var t1 = ctx.CurrentUtcDateTime;
            await ctx.CallActivityAsync<string>("SayHello", "a");
            var g2 = ctx.NewGuid();
            ctx.SetCustomStatus(new { g1, t1 });
            await ctx.CallActivityAsync<string>("SayHello", "b");
            // After two more replays, the values computed before the awaits must be unchanged.
            return new[] { g1.ToString(), g2.ToString(), t1.ToString("o") };
        });
        await using var hub = TestHub.Create(backend);
        var host = await hub.StartAsync(registry);
        var id = await host.Client.ScheduleNewOrchestrationInstanceAsync("Stable");
        var done = await host.Client.WaitAsync(id);
        var output = done.ReadOutputAs<string[]>()!;
        var history = await host.Client.GetHistoryAsync(id);
        var firstEpisode = history.OfType<OrchestratorStarted>().First().Timestamp;
        Assert.Equal(firstEpisode.ToString("o"), output[2]);
        Assert.NotEqual(output[0], output[1]);
        Assert.Equal('5', output[0][14]); // version 5
        Assert.Contains(output[0], done.SerializedCustomStatus);
    }
}
