using System.Globalization;

namespace Serverless.Durable.TestWorker;

/// <summary>The orchestrations the crash and scale-out tests run, shared by the worker process and the tests.</summary>
public static class CrashWorkload
{
    /// <summary>Sum of squares 1..n computed by fan-out, then doubled by a second activity: 2·n(n+1)(2n+1)/6.</summary>
    public const string SumOfSquares = "CrashSumOfSquares";

    /// <summary>Two activities in sequence: returns "input:a:b".</summary>
    public const string TwoSteps = "TwoSteps";

    public static long ExpectedSum(int n) => 2L * n * (n + 1) * (2 * n + 1) / 6;

    /// <param name="onActivityStart">Called as each activity execution starts (the kill point for crashes during an activity).</param>
    public static DurableTaskRegistry Register(DurableTaskRegistry registry, Action<string>? onActivityStart = null) => registry
        .AddActivity<int, long>("SlowSquare", async (ctx, x) =>
        {
            onActivityStart?.Invoke(ctx.InstanceId);
            await Task.Delay(20);
            return (long)x * x;
        })
        .AddActivity<long, long>("Double", (ctx, x) =>
        {
            onActivityStart?.Invoke(ctx.InstanceId);
            return Task.FromResult(x * 2);
        })
        .AddActivity<string, string>("Append", (ctx, s) =>
        {
            onActivityStart?.Invoke(ctx.InstanceId);
            return Task.FromResult(s + ":" + ctx.TaskId.ToString(CultureInfo.InvariantCulture));
        })
        .AddOrchestrator<int, long>(SumOfSquares, async (ctx, n) =>
        {
            var tasks = new Task<long>[n];
            for (var i = 0; i < n; i++) tasks[i] = ctx.CallActivityAsync<long>("SlowSquare", i + 1);
            var sum = (await Task.WhenAll(tasks)).Sum();
            return await ctx.CallActivityAsync<long>("Double", sum);
        })
        .AddOrchestrator<string, string>(TwoSteps, async (ctx, s) =>
        {
            var a = await ctx.CallActivityAsync<string>("Append", s);
            return await ctx.CallActivityAsync<string>("Append", a);
        });
}
