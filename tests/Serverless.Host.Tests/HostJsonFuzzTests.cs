using System.Text;
using Serverless.Host;
using Xunit.Abstractions;

namespace Serverless.Host.Tests;

/// <summary>
/// runtime/Serverless.Host's own host.json readers (the host that starts isolated-worker apps): the
/// HTTP/queue settings (<c>HostJson.Read</c>) and the durable task hub's (<c>DurableHostJson.Read</c>).
/// Both read <c>host.json</c> from the app directory and document <see cref="HostStartException"/>
/// (a one-line CLI message). Both are internal: this project is the host library's own test project.
/// </summary>
public sealed class HostJsonFuzzTests(ITestOutputHelper output)
{
    private const string Sample = """
        {
          // comments and trailing commas are allowed, as the Functions host allows them
          "version": "2.0",
          "extensions": {
            "http": { "routePrefix": "api/v1" },
            "queues": { "batchSize": 16, "newBatchThreshold": 8, "maxDequeueCount": 5, "visibilityTimeout": "00:00:05", "maxPollingInterval": "00:00:02", "messageEncoding": "none" },
            "durableTask": { "hubName": "FuzzHub1", "storageProvider": { "type": "sqlite", "connectionName": "Storage", "maxQueuePollingInterval": "00:00:01" } },
          },
        }
        """;

    /// <summary>
    /// 16 × input + 256 KiB: File.ReadAllText decodes into a string (2 ×, plus the StreamReader's
    /// growing builder, 2–3 ×), the JSON DOM keeps its own UTF-8 copy and metadata rows (a few ×).
    /// The intercept is the FileStream and StreamReader buffers and the path strings.
    /// </summary>
    private static LoaderSpec Spec(string name) => new(name, [typeof(HostStartException)], 16, 256 << 10);

    private void Fuzz(string name, Func<string, object> read, byte[][] regressions)
    {
        var directory = Directory.CreateTempSubdirectory("fuzz-hostjson-").FullName;
        try
        {
            var path = Path.Combine(directory, "host.json");
            Fuzzer.Run(Spec(name), [Encoding.UTF8.GetBytes(Sample)], b =>
            {
                File.WriteAllBytes(path, b);
                read(directory);
            }, output, regressions, text: true);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// Found by seed 19 (iteration 878): a lone surrogate escape in a queue setting's name
    /// ("newBatchThresho\ud800maxDequeueCount") threw InvalidOperationException from JsonElement instead
    /// of HostStartException. The same cause, written small: a version, an extensions section or a
    /// routePrefix of the wrong JSON kind, a lone surrogate in a value.
    /// </summary>
    private static readonly byte[][] HostJsonRegressions =
    [
        """{ "version": 2 }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": [] }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": { "http": 1 } }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": { "http": { "routePrefix": 7 } } }"""u8.ToArray(),
        """{ "version": "\ud800" }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": { "queues": { "newBatchThresho\ud800maxDequeueCount": 5 } } }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": { "queues": { "b\udc00": 1 } } }"""u8.ToArray(),
        """{ "version": "2.0", "extensions": { "queues": { "visibilityTimeout": "\ud800" } } }"""u8.ToArray(),
        """[]"""u8.ToArray(),
    ];

    [Fact]
    public void Host_json_http_and_queues() => Fuzz("host.json (Serverless.Host)", HostJson.Read, HostJsonRegressions);

    private static readonly byte[][] DurableRegressions =
    [
        """{ "extensions": { "durableTask": { "hubName": 5 } } }"""u8.ToArray(),
        """{ "extensions": { "durableTask": { "storageProvider": { "type": [] } } } }"""u8.ToArray(),
        """{ "extensions": { "durableTask": { "hubName": "\ud800abc" } } }"""u8.ToArray(),
    ];

    [Fact]
    public void Host_json_durable_task() => Fuzz("host.json durableTask (Serverless.Host)", Serverless.Host.Durable.DurableHostJson.Read, DurableRegressions);
}
