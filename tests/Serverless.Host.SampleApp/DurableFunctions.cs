using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;

namespace Serverless.Host.SampleApp;

/// <summary>
/// Durable Functions cases for the local host's conformance suite: each orchestration exercises one thing
/// the engine must get right under replay (sequence, fan-out/fan-in, timer, external event with timeout,
/// sub-orchestration, ContinueAsNew, retry, custom status), written on Microsoft.DurableTask as any app is.
/// </summary>
public static class DurableFunctions
{
    /// <summary>Starts any orchestration by name (the body is its JSON input) and answers with the async HTTP API.</summary>
    [Function(nameof(StartOrchestration))]
    public static async Task<HttpResponseData> StartOrchestration(
        [HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "durable/{name}")] HttpRequestData request,
        [DurableClient] DurableTaskClient client,
        string name)
    {
        string body = await new StreamReader(request.Body).ReadToEndAsync();
        object? input = body.Length == 0 ? null : JsonDocument.Parse(body).RootElement.Clone();
        string instanceId = await client.ScheduleNewOrchestrationInstanceAsync(name, input);
        return await client.CreateCheckStatusResponseAsync(request, instanceId);
    }

    /// <summary>The durable client from a function: its status query answers what the HTTP API does.</summary>
    [Function(nameof(GetOrchestrationStatus))]
    public static async Task<HttpResponseData> GetOrchestrationStatus(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "durable-status/{instanceId}")] HttpRequestData request,
        [DurableClient] DurableTaskClient client,
        string instanceId)
    {
        OrchestrationMetadata? metadata = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true);
        HttpResponseData response = request.CreateResponse(metadata is null ? System.Net.HttpStatusCode.NotFound : System.Net.HttpStatusCode.OK);
        if (metadata is not null)
        {
            await response.WriteStringAsync(JsonSerializer.Serialize(new { status = metadata.RuntimeStatus.ToString(), output = metadata.SerializedOutput }));
        }
        return response;
    }

    [Function(nameof(HelloSequence))]
    public static async Task<List<string>> HelloSequence([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        var greetings = new List<string>();
        foreach (string city in new[] { "Tokyo", "Seattle", "London" })
        {
            greetings.Add(await context.CallActivityAsync<string>(nameof(SayHello), city));
        }
        return greetings;
    }

    /// <summary>The benchmark's orchestration: five activities in a row.</summary>
    [Function(nameof(HelloSequence5))]
    public static async Task<int> HelloSequence5([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        int total = 0;
        for (int i = 0; i < 5; i++)
        {
            total += await context.CallActivityAsync<int>(nameof(Square), i);
        }
        return total;
    }

    [Function(nameof(SayHello))]
    public static string SayHello([ActivityTrigger] string name) => $"Hello {name}!";

    [Function(nameof(Square))]
    public static int Square([ActivityTrigger] int value) => value * value;

    /// <summary>Fan-out/fan-in: n activities at once, then their sum.</summary>
    [Function(nameof(FanOutFanIn))]
    public static async Task<long> FanOutFanIn([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        int n = context.GetInput<int>();
        var tasks = new List<Task<int>>(n);
        for (int i = 0; i < n; i++)
        {
            tasks.Add(context.CallActivityAsync<int>(nameof(Square), i));
        }
        int[] squares = await Task.WhenAll(tasks);
        return squares.Sum(s => (long)s);
    }

    /// <summary>
    /// A durable timer: the orchestration sleeps in the store, not in memory. The result is how late (ms, negative
    /// when early) the orchestration woke against the due time, by the orchestration's own replay-safe clock.
    /// </summary>
    [Function(nameof(DurableTimer))]
    public static async Task<double> DurableTimer([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        double seconds = context.GetInput<double>();
        DateTime due = context.CurrentUtcDateTime.AddSeconds(seconds);
        await context.CreateTimer(due, CancellationToken.None);
        return Math.Round((context.CurrentUtcDateTime - due).TotalMilliseconds);
    }

    /// <summary>An external event with a timeout: "approved:VALUE" or "timed out".</summary>
    [Function(nameof(Approval))]
    public static async Task<string> Approval([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        double seconds = context.GetInput<double>();
        try
        {
            string value = await context.WaitForExternalEvent<string>("Approval", TimeSpan.FromSeconds(seconds));
            return "approved:" + value;
        }
        catch (TaskCanceledException)
        {
            return "timed out";
        }
    }

    [Function(nameof(Parent))]
    public static async Task<string> Parent([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        List<string> child = await context.CallSubOrchestratorAsync<List<string>>(nameof(HelloSequence));
        return "child said " + string.Join(" ", child);
    }

    /// <summary>ContinueAsNew until the input reaches 5: one instance id, fresh history each generation.</summary>
    [Function(nameof(Counter))]
    public static Task<int> Counter([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        int n = context.GetInput<int>();
        if (n < 5)
        {
            context.ContinueAsNew(n + 1);
        }
        return Task.FromResult(n);
    }

    /// <summary>A retry policy: the activity fails twice for a key, then succeeds; the result is its attempt count.</summary>
    [Function(nameof(Retrying))]
    public static async Task<int> Retrying([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        string key = context.GetInput<string>()!;
        var options = TaskOptions.FromRetryPolicy(new RetryPolicy(maxNumberOfAttempts: 4, firstRetryInterval: TimeSpan.FromMilliseconds(200)));
        return await context.CallActivityAsync<int>(nameof(FailTwice), key, options);
    }

    private static readonly ConcurrentDictionary<string, int> Attempts = new(StringComparer.Ordinal);

    [Function(nameof(FailTwice))]
    public static int FailTwice([ActivityTrigger] string key)
    {
        int attempt = Attempts.AddOrUpdate(key, 1, (_, n) => n + 1);
        if (attempt <= 2)
        {
            throw new InvalidOperationException($"attempt {attempt} fails on purpose");
        }
        return attempt;
    }

    /// <summary>
    /// The crash trials' orchestration: twenty activities in a row, each appending "step N" to the marker file
    /// named by the input, so the test can see every effect, in order, and any step a crash made run twice.
    /// The output is 1 + 2 + ... + 20 = 210.
    /// </summary>
    [Function(nameof(Sequence20))]
    public static async Task<int> Sequence20([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        string marker = context.GetInput<string>()!;
        int total = 0;
        for (int step = 1; step <= 20; step++)
        {
            total += await context.CallActivityAsync<int>(nameof(AppendStep), new StepInput(marker, step));
        }
        return total;
    }

    public sealed record StepInput(string Marker, int Step);

    /// <summary>An at-least-once effect: one line per execution, flushed before the activity answers.</summary>
    [Function(nameof(AppendStep))]
    public static int AppendStep([ActivityTrigger] StepInput input)
    {
        using (var file = new FileStream(input.Marker, FileMode.Append, FileAccess.Write, FileShare.ReadWrite))
        using (var writer = new StreamWriter(file))
        {
            writer.WriteLine($"step {input.Step}");
            writer.Flush();
            file.Flush(flushToDisk: true);
        }
        // A little work per step, so a kill at a random moment lands inside the orchestration, not after it.
        Thread.Sleep(25);
        return input.Step;
    }

    /// <summary>Custom status while it waits for "Go" (forever: terminate ends it).</summary>
    [Function(nameof(Waiting))]
    public static async Task<string> Waiting([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        context.SetCustomStatus(new { stage = "waiting", since = context.CurrentUtcDateTime });
        string go = await context.WaitForExternalEvent<string>("Go");
        context.SetCustomStatus(new { stage = "done" });
        return "went " + go;
    }
}
