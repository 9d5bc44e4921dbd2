using System.Collections.Concurrent;
using DurableTask.Core;

namespace Serverless.TaskHub.Sqlite.Tests;

/// <summary>The orchestrations the tests run (DurableTask.Core's TaskOrchestration classes).</summary>
internal static class Orchestrations
{
    public static readonly Type[] All =
    [
        typeof(HelloSequence), typeof(FanOut), typeof(DurableTimer), typeof(ApprovalWithDeadline), typeof(Parent),
        typeof(Counter), typeof(RetryingCaller), typeof(WaitForever), typeof(Steps),
    ];

    /// <summary>Five activities in order; returns their results joined.</summary>
    public sealed class HelloSequence : TaskOrchestration<string, string>
    {
        public override async Task<string> RunTask(OrchestrationContext context, string input)
        {
            var parts = new List<string>();
            for (var i = 0; i < 5; i++) parts.Add(await context.ScheduleTask<string>(typeof(Activities.Hello), $"{input}{i}"));
            return string.Join(",", parts);
        }
    }

    /// <summary>n activities at once, then the sum of their results.</summary>
    public sealed class FanOut : TaskOrchestration<long, int>
    {
        public override async Task<long> RunTask(OrchestrationContext context, int input)
        {
            var tasks = new Task<int>[input];
            for (var i = 0; i < input; i++) tasks[i] = context.ScheduleTask<int>(typeof(Activities.Increment), i);
            long sum = 0;
            foreach (var r in await Task.WhenAll(tasks)) sum += r;
            return sum;
        }
    }

    /// <summary>Sleeps on a durable timer (input: milliseconds) and reports that the replayed clock moved past it.</summary>
    public sealed class DurableTimer : TaskOrchestration<bool, int>
    {
        public override async Task<bool> RunTask(OrchestrationContext context, int input)
        {
            var fireAt = context.CurrentUtcDateTime.AddMilliseconds(input);
            await context.CreateTimer(fireAt, "wake");
            return context.CurrentUtcDateTime >= fireAt;
        }
    }

    /// <summary>Waits for an "approve" event racing a durable deadline (input: milliseconds); custom status says when it is waiting.</summary>
    public sealed class ApprovalWithDeadline : TaskOrchestration<string, int, string, string>
    {
        private readonly TaskCompletionSource<string> _approval = new();
        private string _status = "starting";

        public override async Task<string> RunTask(OrchestrationContext context, int input)
        {
            using var cts = new CancellationTokenSource();
            var deadline = context.CreateTimer(context.CurrentUtcDateTime.AddMilliseconds(input), "deadline", cts.Token);
            _status = "waiting";
            var winner = await Task.WhenAny(_approval.Task, deadline);
            if (winner == _approval.Task)
            {
                cts.Cancel();
                _status = "approved";
                return "approved by " + _approval.Task.Result;
            }
            _status = "timed out";
            return "timed out";
        }

        public override void OnEvent(OrchestrationContext context, string name, string input)
        {
            if (name == "approve") _approval.TrySetResult(input);
        }

        public override string OnGetStatus() => _status;
    }

    /// <summary>Runs a HelloSequence and a FanOut as sub-orchestrations.</summary>
    public sealed class Parent : TaskOrchestration<string, string>
    {
        public override async Task<string> RunTask(OrchestrationContext context, string input)
        {
            var sequence = await context.CreateSubOrchestrationInstance<string>(typeof(HelloSequence), context.OrchestrationInstance.InstanceId + ":seq", input);
            var sum = await context.CreateSubOrchestrationInstance<long>(typeof(FanOut), context.OrchestrationInstance.InstanceId + ":fan", 10);
            return $"{sequence}|{sum}";
        }
    }

    /// <summary>Continues as new, one activity per generation, until the counter reaches 5.</summary>
    public sealed class Counter : TaskOrchestration<int, int>
    {
        public override async Task<int> RunTask(OrchestrationContext context, int input)
        {
            var next = await context.ScheduleTask<int>(typeof(Activities.Increment), input);
            if (next < 5)
            {
                context.ContinueAsNew(next);
                return -1;
            }
            return next;
        }
    }

    /// <summary>Calls an activity that fails its first two attempts, with a retry policy of three attempts.</summary>
    public sealed class RetryingCaller : TaskOrchestration<string, string>
    {
        public override Task<string> RunTask(OrchestrationContext context, string input) =>
            context.ScheduleWithRetry<string>(typeof(Activities.FailTwice), new RetryOptions(TimeSpan.FromMilliseconds(100), 3), input);
    }

    /// <summary>Waits for an event that never comes (until terminated).</summary>
    public sealed class WaitForever : TaskOrchestration<string, string>
    {
        private readonly TaskCompletionSource<string> _never = new();

        public override Task<string> RunTask(OrchestrationContext context, string input) => _never.Task;

        public override string OnGetStatus() => "waiting";
    }

    /// <summary>n steps in sequence (input), each an activity that records its effect; returns the number of steps.</summary>
    public sealed class Steps : TaskOrchestration<int, int>
    {
        public override async Task<int> RunTask(OrchestrationContext context, int input)
        {
            var done = 0;
            for (var i = 0; i < input; i++) done += await context.ScheduleTask<int>(typeof(Activities.RecordStep), $"{context.OrchestrationInstance.InstanceId}/{i}");
            return done;
        }
    }
}

/// <summary>The activities the tests run. Effects are counted per key (keys carry the instance id, so tests never share them).</summary>
internal static class Activities
{
    public static readonly Type[] All = [typeof(Hello), typeof(Increment), typeof(FailTwice), typeof(RecordStep)];

    public static readonly ConcurrentDictionary<string, int> Effects = new(StringComparer.Ordinal);

    public static int Count(string key) => Effects.TryGetValue(key, out var n) ? n : 0;

    public sealed class Hello : TaskActivity<string, string>
    {
        protected override string Execute(TaskContext context, string input) => $"hello {input}";
    }

    public sealed class Increment : TaskActivity<int, int>
    {
        protected override int Execute(TaskContext context, int input) => input + 1;
    }

    public sealed class FailTwice : TaskActivity<string, string>
    {
        protected override string Execute(TaskContext context, string input)
        {
            var attempt = Effects.AddOrUpdate("attempt/" + input, 1, (_, n) => n + 1);
            if (attempt <= 2) throw new InvalidOperationException($"attempt {attempt} fails on purpose");
            return $"ok after {attempt}";
        }
    }

    public sealed class RecordStep : TaskActivity<string, int>
    {
        protected override int Execute(TaskContext context, string input)
        {
            Effects.AddOrUpdate(input, 1, (_, n) => n + 1);
            return 1;
        }
    }
}
