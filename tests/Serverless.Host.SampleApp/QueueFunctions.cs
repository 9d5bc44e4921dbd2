using Microsoft.Azure.Functions.Worker;

namespace Serverless.Host.SampleApp;

/// <summary>
/// Queue-trigger cases for the local host's conformance tests. Each function reports through a queue
/// output binding, so a test can see what ran, how often, and what ended in a poison queue.
/// </summary>
public sealed class QueueFunctions
{
    /// <summary>Fails on the first delivery and succeeds on the second: at-least-once with a retry.</summary>
    [Function("Flaky")]
    [QueueOutput("flaky-done")]
    public static string Flaky([QueueTrigger("flaky")] string message, FunctionContext context)
    {
        int dequeueCount = DequeueCount(context);
        if (dequeueCount < 2)
        {
            throw new InvalidOperationException("first delivery fails on purpose");
        }
        return $"{message} after {dequeueCount}";
    }

    /// <summary>Always fails: after host.json's maxDequeueCount the message must be in doomed-poison.</summary>
    [Function("Doomed")]
    public static void Doomed([QueueTrigger("doomed")] string message) =>
        throw new InvalidOperationException("always fails on purpose");

    /// <summary>Succeeds at once; the output carries the dequeue count so a test sees one delivery.</summary>
    [Function("Upper")]
    [QueueOutput("upper-done")]
    public static string Upper([QueueTrigger("upper")] string message, FunctionContext context) =>
        $"{message.ToUpperInvariant()} {DequeueCount(context)}";

    /// <summary>
    /// Blocks on its first delivery until the worker is killed (the message is the path of a file it creates
    /// to say it has started); a later delivery succeeds. The kill-the-worker test: nothing is lost.
    /// </summary>
    [Function("Stall")]
    [QueueOutput("stall-done")]
    public static async Task<string> Stall([QueueTrigger("stall")] string markerPath, FunctionContext context)
    {
        int dequeueCount = DequeueCount(context);
        if (dequeueCount == 1)
        {
            await File.WriteAllTextAsync(markerPath, "started");
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
        return $"{markerPath} after {dequeueCount}";
    }

    private static int DequeueCount(FunctionContext context) =>
        int.Parse(context.BindingContext.BindingData["DequeueCount"]?.ToString() ?? "0", System.Globalization.CultureInfo.InvariantCulture);
}
