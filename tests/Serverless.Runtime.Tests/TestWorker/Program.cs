using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Storage;

// Two roles, chosen by the first argument:
//   host --data-dir D --host-json F     run a function host with CrashFunctions (WORKER_MODE=block makes it hang)
//   blob-race DIR NAME ETAG GOFILE       wait for GOFILE, then try one If-Match write; print WON or LOST
if (args.Length > 0 && args[0] == "blob-race")
{
    var store = Stores.OpenEmbeddedBlobContainer(args[1]);
    while (!File.Exists(args[4])) Thread.SpinWait(100);
    try
    {
        await store.PutAsync(args[2], new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"written by {Environment.ProcessId}")), BlobCondition.MustMatch(args[3]));
        Console.WriteLine("WON");
    }
    catch (BlobConditionFailedException)
    {
        Console.WriteLine("LOST");
    }
    return 0;
}

var builder = FunctionsApplication.CreateBuilder(args.Length > 0 && args[0] == "host" ? args[1..] : args);
builder.AddFunctions(typeof(Serverless.Runtime.TestWorker.CrashFunctions));
return await builder.RunAsync();

namespace Serverless.Runtime.TestWorker
{
    /// <summary>Records each attempt as a file, then either hangs (to be killed) or completes.</summary>
    public sealed class CrashFunctions(DataDirectory data)
    {
        [Function("CrashQueue")]
        public async Task Run([QueueTrigger("crash-test")] string message, string id, int dequeueCount, CancellationToken cancellationToken)
        {
            await File.WriteAllTextAsync(Path.Combine(data.Path, $"started-{id}-{dequeueCount}"), message, CancellationToken.None);
            if (Environment.GetEnvironmentVariable("WORKER_MODE") == "block")
                await Task.Delay(Timeout.Infinite, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(data.Path, $"done-{id}"), message, CancellationToken.None);
        }
    }
}
