using System.Diagnostics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Storage;

namespace Serverless.Bench.Suites;

/// <summary>
/// The function host's overhead. HTTP: a JSON echo as an HTTP-triggered function and the same echo as a
/// bare ASP.NET Core minimal-API endpoint, both on real Kestrel at 127.0.0.1 in this process, driven by
/// the same bounded loop of concurrent HttpClient workers, alternating runs; medians. Queue: messages/s
/// through a queue-triggered function on the embedded SQLite queue, beside a bare receive/run/delete
/// loop over the same store (no host).
/// </summary>
internal sealed class HostSuite : IBenchSuite
{
    public string Name => "host";

    private const int Workers = 4;

    public async Task<int> RunAsync(BenchOptions options)
    {
        var runs = options.Quick ? 5 : 9;
        var runTime = TimeSpan.FromSeconds(options.Quick ? 1 : 4);
        var messages = options.Quick ? 1000 : 5000;
        var data = Path.Combine(Path.GetTempPath(), "serverless-bench-host-" + Guid.NewGuid().ToString("N"));
        Console.WriteLine($"host: {Environment.ProcessorCount} cores; HTTP {runs} runs x {runTime.TotalSeconds}s per server, {Workers} client workers; queue {runs} runs x {messages} messages");
        try
        {
            var figures = new List<(string Key, object Value)>();
            // Ratios are medians of the per-run ratios: each host run sits next to its peer run, so load that
            // drifts over the suite (the machine is shared) cancels within a pair.
            var (hostRps, aspnetRps) = await MeasureHttpAsync(data, runs, runTime);
            figures.Add(("http_rps", Measure.Median(hostRps)));
            figures.Add(("http_ratio_vs_aspnet", PairedRatio(hostRps, aspnetRps)));
            figures.Add(("aspnet_rps", Measure.Median(aspnetRps)));

            var (queueRate, bareRate) = await MeasureQueueAsync(data, runs, messages);
            figures.Add(("queue_msgs_per_s", Measure.Median(queueRate)));
            figures.Add(("queue_bare_msgs_per_s", Measure.Median(bareRate)));
            figures.Add(("queue_ratio_vs_bare", PairedRatio(queueRate, bareRate)));

            foreach (var figure in await SecurityFigures.MeasureAsync(options.Quick)) figures.Add(figure);
            Console.WriteLine(Measure.Result(Name, figures));
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static double PairedRatio(double[] subject, double[] peer)
    {
        var ratios = new double[subject.Length];
        for (var i = 0; i < ratios.Length; i++) ratios[i] = subject[i] / peer[i];
        return Measure.Median(ratios);
    }

    // ---------------------------------------------------------------- HTTP

    public sealed record EchoRequest(string Message, int Count);

    public sealed record EchoResponse(string Message, int Count, int Length);

    private static EchoResponse Echo(EchoRequest request) => new(request.Message, request.Count + 1, request.Message.Length);

    /// <summary>The function under test (public: the host indexes public classes).</summary>
    public sealed class BenchFunctions(QueueCounter counter)
    {
        [Function("BenchEcho")]
        public EchoResponse EchoFunction([HttpTrigger("post", Route = "echo")] HttpRequest request, EchoRequest body) => Echo(body);

        [Function("BenchQueue")]
        public void Consume([QueueTrigger("bench-work")] byte[] body)
        {
            if (body.Length == 0) throw new InvalidOperationException("empty message");
            counter.Done();
        }
    }

    public sealed class QueueCounter
    {
        private int _done;
        private int _target = int.MaxValue;
        private TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long FirstTimestamp;

        public Task Expect(int count)
        {
            _done = 0;
            FirstTimestamp = 0;
            _all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _target, count);
            return _all.Task;
        }

        public void Done()
        {
            Interlocked.CompareExchange(ref FirstTimestamp, Stopwatch.GetTimestamp(), 0);
            if (Interlocked.Increment(ref _done) == Volatile.Read(ref _target)) _all.TrySetResult();
        }
    }

    private static string HostJson => """
        {
          "version": "2.0",
          "logging": { "logLevel": { "default": "Warning" } },
          "extensions": { "queues": { "batchSize": 32, "newBatchThreshold": 16, "maxPollingInterval": "00:00:00.100", "messageLease": "00:01:00" } }
        }
        """;

    private static async Task<(double[] HostRps, double[] AspNetRps)> MeasureHttpAsync(string data, int runs, TimeSpan runTime)
    {
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            Args = ["--port", "0"],
            HostJson = HostJson,
            DataDirectory = Path.Combine(data, "http"),
        });
        builder.Services.AddSingleton<QueueCounter>();
        builder.AddFunctions(typeof(BenchFunctions));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var host = builder.Build();

        var bare = WebApplication.CreateSlimBuilder();
        bare.Logging.ClearProviders();
        bare.WebHost.UseUrls("http://127.0.0.1:0");
        var peer = bare.Build();
        peer.MapPost("/api/echo", (EchoRequest request) => Echo(request));

        var stdout = Console.Out;
        Console.SetOut(TextWriter.Null); // the host prints its URL; keep the bench output to figures
        await host.StartAsync();
        Console.SetOut(stdout);
        await peer.StartAsync();
        try
        {
            var hostUrl = Address(host) + "/api/echo";
            var peerUrl = Address(peer) + "/api/echo";
            await LoadAsync(hostUrl, TimeSpan.FromSeconds(0.5)); // warm-up: JIT, connections
            await LoadAsync(peerUrl, TimeSpan.FromSeconds(0.5));
            var hostSamples = new double[runs];
            var peerSamples = new double[runs];
            for (var r = 0; r < runs; r++)
            {
                hostSamples[r] = await LoadAsync(hostUrl, runTime);
                peerSamples[r] = await LoadAsync(peerUrl, runTime);
                Console.WriteLine($"  http run {r + 1}: function host {hostSamples[r]:F0} req/s, bare ASP.NET Core {peerSamples[r]:F0} req/s");
            }
            return (hostSamples, peerSamples);
        }
        finally
        {
            await host.StopAsync();
            await peer.StopAsync();
            await host.DisposeAsync();
            await peer.DisposeAsync();
        }
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');

    /// <summary>Requests per second from <see cref="Workers"/> concurrent clients posting for <paramref name="duration"/>; every answer is checked.</summary>
    private static Task<double> LoadAsync(string url, TimeSpan duration) =>
        Measure.ClosedLoopRequestsPerSecondAsync(Workers, duration, async (client, w) =>
        {
            using var response = await client.PostAsJsonAsync(url, new EchoRequest($"worker {w} says hello", w));
            response.EnsureSuccessStatusCode();
            var echo = await response.Content.ReadFromJsonAsync<EchoResponse>();
            if (echo is null || echo.Count != w + 1) throw new InvalidOperationException("wrong echo");
        });

    // ---------------------------------------------------------------- queues

    private static async Task<(double[] Host, double[] Bare)> MeasureQueueAsync(string data, int runs, int messages)
    {
        var directory = Path.Combine(data, "queue");
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            Args = ["--port", "0"],
            HostJson = HostJson,
            DataDirectory = directory,
        });
        builder.Services.AddSingleton<QueueCounter>();
        builder.AddFunctions(typeof(BenchFunctions));
        var host = builder.Build();
        var stdout = Console.Out;
        Console.SetOut(TextWriter.Null);
        await host.StartAsync();
        Console.SetOut(stdout);
        var queues = host.Services.GetRequiredService<IQueueStore>();
        var counter = host.Services.GetRequiredService<QueueCounter>();
        var body = new byte[256];
        Random.Shared.NextBytes(body);
        var hostSamples = new double[runs];
        var bareSamples = new double[runs];
        try
        {
            for (var r = 0; r < runs; r++)
            {
                // Host: fill the queue hidden, so the listener sees the whole batch at once, then time first run -> last delete.
                var all = counter.Expect(messages);
                await FillAsync(queues, "bench-work", messages, body, TimeSpan.FromSeconds(2));
                await all.WaitAsync(TimeSpan.FromMinutes(5));
                while (await queues.GetApproximateCountAsync("bench-work") > 0) await Task.Delay(2);
                hostSamples[r] = messages / Stopwatch.GetElapsedTime(counter.FirstTimestamp).TotalSeconds;

                // Bare: the same store, a loop with the same parallelism (32 in flight), no host.
                await FillAsync(queues, "bench-bare", messages, body, TimeSpan.Zero);
                bareSamples[r] = await BareLoopAsync(queues, "bench-bare", messages);
                Console.WriteLine($"  queue run {r + 1}: function host {hostSamples[r]:F0} msg/s, bare loop {bareSamples[r]:F0} msg/s");
            }
        }
        finally
        {
            await host.StopAsync();
            await host.DisposeAsync();
        }
        return (hostSamples, bareSamples);
    }

    private static async Task FillAsync(IQueueStore queues, string queue, int count, byte[] body, TimeSpan hidden)
    {
        await queues.CreateQueueAsync(queue);
        var tasks = new List<Task>(64);
        for (var i = 0; i < count; i++)
        {
            tasks.Add(queues.PutAsync(queue, body, hidden));
            if (tasks.Count == 64)
            {
                await Task.WhenAll(tasks);
                tasks.Clear();
            }
        }
        await Task.WhenAll(tasks);
    }

    private static async Task<double> BareLoopAsync(IQueueStore queues, string queue, int count)
    {
        var start = Stopwatch.GetTimestamp();
        var done = 0;
        while (done < count)
        {
            var batch = await queues.GetAsync(queue, 32, TimeSpan.FromMinutes(1));
            if (batch.Count == 0) continue;
            await Task.WhenAll(batch.Select(async m =>
            {
                await Task.Yield();
                if (m.Body.Length == 0) throw new InvalidOperationException("empty message");
                await queues.DeleteAsync(queue, m.Id, m.PopReceipt);
            }));
            done += batch.Count;
        }
        return count / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
