using Microsoft.Extensions.Logging;
using Serverless.Durable.Core;
using Serverless.Durable.History;

namespace Serverless.Durable.Tests.Core;

/// <summary>The replay engine alone, episode by episode, without storage.</summary>
public sealed class OrchestrationExecutorTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Drives one instance: keeps its history and feeds each episode's messages.</summary>
    private sealed class Driver(DurableTaskRegistry registry, ILoggerFactory? loggers = null)
    {
        public List<HistoryEvent> History { get; } = [];
        private int _episode;

        public EpisodeOutcome Run(params HistoryEvent[] messages)
        {
            var executor = new OrchestrationExecutor("inst-1", History.ToList(), messages, registry, T0.AddSeconds(++_episode),
                loggers ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, null);
            var outcome = executor.Execute();
            History.AddRange(outcome.NewEvents);
            return outcome;
        }

        public EpisodeOutcome Start(string name, string? input = null) => Run(new ExecutionStarted(T0, name, "exec-1", input));
    }

    private static TaskCompleted Done(int id, string json) => new(T0, id, json);

    [Fact]
    public void Replays_recorded_results_and_schedules_only_new_work()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("Seq", async ctx =>
            await ctx.CallActivityAsync<int>("Add", 1) + await ctx.CallActivityAsync<int>("Add", 2));
        var driver = new Driver(registry);
        var first = driver.Start("Seq");
        Assert.Equal("Add", Assert.Single(first.NewActivities).Name);
        Assert.Equal(0, first.NewActivities[0].EventId);
        var second = driver.Run(Done(0, "10"));
        Assert.Equal(1, Assert.Single(second.NewActivities).EventId); // the first call was answered from history, not re-sent
        var third = driver.Run(Done(1, "20"));
        Assert.Empty(third.NewActivities);
        Assert.Equal(OrchestrationRuntimeStatus.Completed, third.Status);
        Assert.Equal("30", third.Output);
        Assert.True(third.ReplayedEvents > 0);
    }

    [Fact]
    public void A_duplicate_or_unknown_completion_is_dropped()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("One", async ctx => await ctx.CallActivityAsync<int>("A") + 1);
        var driver = new Driver(registry);
        driver.Start("One");
        var outcome = driver.Run(Done(0, "1"), Done(0, "100"), Done(7, "5"));
        Assert.Equal("2", outcome.Output);
        Assert.All(outcome.Consumed, Assert.True);
        Assert.Single(driver.History.OfType<TaskCompleted>());
    }

    [Fact]
    public void A_timer_where_history_has_an_activity_is_non_deterministic()
    {
        var useTimer = false;
        var registry = new DurableTaskRegistry().AddOrchestrator("Flip", async ctx =>
        {
            if (useTimer) await ctx.CreateTimer(TimeSpan.FromSeconds(1));
            else await ctx.CallActivityAsync("Work");
            return await ctx.WaitForExternalEvent<int>("go");
        });
        var driver = new Driver(registry);
        driver.Start("Flip");
        driver.Run(Done(0, "null"));
        useTimer = true;
        var outcome = driver.Run(new EventRaised(T0, "go", "1"));
        Assert.Equal(OrchestrationRuntimeStatus.Failed, outcome.Status);
        Assert.Contains("step 0", outcome.Failure!.ErrorMessage);
        Assert.Contains("activity 'Work'", outcome.Failure.ErrorMessage);
        Assert.Contains("creates a timer", outcome.Failure.ErrorMessage);
        Assert.Empty(outcome.NewActivities);
        Assert.IsType<ExecutionFailed>(driver.History[^1]);
    }

    [Fact]
    public void An_orchestrator_exception_fails_the_instance_with_its_details()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("Bad", async ctx =>
        {
            await ctx.CallActivityAsync("A");
            throw new ArgumentException("bad argument in orchestrator");
        });
        var driver = new Driver(registry);
        driver.Start("Bad");
        var outcome = driver.Run(Done(0, "null"));
        Assert.Equal(OrchestrationRuntimeStatus.Failed, outcome.Status);
        Assert.Equal(typeof(ArgumentException).FullName, outcome.Failure!.ErrorType);
        Assert.Equal("bad argument in orchestrator", outcome.Failure.ErrorMessage);
    }

    [Fact]
    public void An_unknown_orchestrator_fails_clearly()
    {
        var outcome = new Driver(new DurableTaskRegistry()).Start("Nope");
        Assert.Equal(OrchestrationRuntimeStatus.Failed, outcome.Status);
        Assert.Contains("No orchestrator named 'Nope'", outcome.Failure!.ErrorMessage);
    }

    [Fact]
    public void A_cancelled_timer_lets_the_orchestrator_go_on_and_its_late_firing_is_ignored()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("Race", async ctx =>
        {
            using var cts = new CancellationTokenSource();
            var timer = ctx.CreateTimer(ctx.CurrentUtcDateTime.AddHours(1), cts.Token);
            var approval = ctx.WaitForExternalEvent<string>("approve");
            var winner = await Task.WhenAny(timer, approval);
            if (winner == approval) cts.Cancel();
            return winner == approval ? await approval : "expired";
        });
        var driver = new Driver(registry);
        var started = driver.Start("Race");
        Assert.Equal(T0.AddSeconds(1).AddHours(1), Assert.Single(started.NewTimers).FireAt);
        var done = driver.Run(new EventRaised(T0, "approve", "\"yes\""));
        Assert.Equal("\"yes\"", done.Output);
    }

    [Fact]
    public void Replay_safe_logger_writes_each_message_once()
    {
        var sink = new ListLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Trace));
        var replayFlags = new List<bool>();
        var registry = new DurableTaskRegistry().AddOrchestrator("Chatty", async ctx =>
        {
            var log = ctx.CreateReplaySafeLogger("Chatty");
            replayFlags.Add(ctx.IsReplaying);
            log.LogInformation("step one");
            await ctx.CallActivityAsync("A");
            log.LogInformation("step two");
            await ctx.CallActivityAsync("B");
            log.LogInformation("step three");
            return null;
        });
        var driver = new Driver(registry, loggers);
        driver.Start("Chatty");
        driver.Run(Done(0, "null"));
        driver.Run(Done(1, "null"));
        Assert.Equal(["step one", "step two", "step three"], sink.Messages);
        Assert.Equal([false, true, true], replayFlags); // the code ran three times, logged once per step
    }

    [Fact]
    public void Events_are_buffered_until_awaited_and_delivered_in_order()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("Collect", async ctx =>
        {
            await ctx.CallActivityAsync("Slow");
            var a = await ctx.WaitForExternalEvent<int>("n");
            var b = await ctx.WaitForExternalEvent<int>("N");
            return a * 10 + b;
        });
        var driver = new Driver(registry);
        driver.Start("Collect");
        driver.Run(new EventRaised(T0, "n", "1"));
        driver.Run(new EventRaised(T0, "n", "2"));
        var done = driver.Run(Done(0, "null"));
        Assert.Equal("12", done.Output);
    }

    [Fact]
    public void Suspended_instances_defer_messages_until_resumed()
    {
        var registry = new DurableTaskRegistry().AddOrchestrator("W", async ctx => await ctx.WaitForExternalEvent<int>("e"));
        var driver = new Driver(registry);
        driver.Start("W");
        var suspended = driver.Run(new ExecutionSuspended(T0, "pause"), new EventRaised(T0, "e", "5"));
        Assert.Equal(OrchestrationRuntimeStatus.Suspended, suspended.Status);
        Assert.Equal([true, false], suspended.Consumed); // the event stays queued
        var resumed = driver.Run(new EventRaised(T0, "e", "5"), new ExecutionResumed(T0, null));
        Assert.Equal(OrchestrationRuntimeStatus.Completed, resumed.Status);
        Assert.Equal("5", resumed.Output);
    }

    private sealed class ListLoggerProvider : ILoggerProvider
    {
        public List<string> Messages { get; } = [];
        public ILogger CreateLogger(string categoryName) => new ListLogger(this);
        public void Dispose() { }

        private sealed class ListLogger(ListLoggerProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Messages.Add(formatter(state, exception));
        }
    }
}
