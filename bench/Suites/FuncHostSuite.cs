using DurableTask.Core;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Host;
using Serverless.Host.Durable;
using Serverless.Host.Http;

namespace Serverless.Bench.Suites;

/// <summary>
/// The local Functions host (runtime/Serverless.Host) with the real isolated worker, both HTTP integrations
/// side by side: RpcHttp (Kestrel -> gRPC stream -> worker process -> back; the sample app's Echo with
/// HttpRequestData) and the worker's ASP.NET Core integration (the host forwards the request to the worker's
/// own Kestrel and the InvocationRequest goes over gRPC beside it; the ASP.NET sample app's Echo with
/// HttpRequest/IResult), beside a bare ASP.NET Core endpoint doing the same echo in this process. All on
/// Kestrel at 127.0.0.1, the same bounded loop of concurrent clients, the three servers taking turns in
/// every run; medians, and the median of each run's ratio to the bare peer (load that drifts over the
/// suite cancels within a run). Then Durable Functions through the RpcHttp sample app's worker: HelloSequence5
/// orchestrations/s (N started at once, each five activities in a row) and fan-out activities/s (one FanOutFanIn
/// of M activities), on the embedded SQLite task hub and on DurableTask.AzureStorage against Azurite (when
/// SERVERLESS_TEST_AZURITE_* point at one, as scripts/test.sh sets).
/// </summary>
internal sealed class FuncHostSuite : IBenchSuite
{
    public string Name => "funchost";

    private const int Workers = 4;

    public async Task<int> RunAsync(BenchOptions options)
    {
        int runs = options.Quick ? 5 : 9;
        TimeSpan runTime = TimeSpan.FromSeconds(options.Quick ? 1 : 4);
        string rpcApp = BuildOutput("SampleAppDirectory");
        string aspNetApp = BuildOutput("AspNetSampleAppDirectory");
        string data = Directory.CreateTempSubdirectory("serverless-bench-funchost-").FullName;
        Console.WriteLine($"funchost: {Environment.ProcessorCount} cores; {runs} runs x {runTime.TotalSeconds}s per server, {Workers} client workers; apps {rpcApp} and {aspNetApp}");

        using ILoggerFactory quiet = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using LocalHost rpcHost = await StartHostAsync(rpcApp, Path.Combine(data, "rpc"), quiet);
        await using LocalHost aspNetHost = await StartHostAsync(aspNetApp, Path.Combine(data, "aspnet"), quiet);

        WebApplicationBuilder bare = WebApplication.CreateSlimBuilder();
        bare.Logging.ClearProviders();
        bare.WebHost.UseUrls("http://127.0.0.1:0");
        await using WebApplication peer = bare.Build();
        peer.MapPost("/api/items/{category}/{id:int}", async (HttpContext context, string category, int id) =>
        {
            string body = await new StreamReader(context.Request.Body).ReadToEndAsync();
            context.Response.Headers["x-sample-echo"] = category;
            return Results.Json(new { Method = context.Request.Method, Category = category, Id = id, Query = (string?)context.Request.Query["q"], Header = (string?)null, Body = body });
        });
        await peer.StartAsync();

        try
        {
            const string path = "api/items/bench/7?q=x";
            string rpcUrl = rpcHost.HttpAddress + path;
            string aspNetUrl = aspNetHost.HttpAddress + path;
            string peerUrl = Address(peer) + "/" + path;
            // Warm-up: JIT and tiered compilation on every side, connections. The ASP.NET Core integration
            // runs more code in the worker (its Kestrel, routing, MVC's result executors) and needs about
            // 10,000 requests before its CPU per request settles; one second was not enough for it.
            TimeSpan warmUp = TimeSpan.FromSeconds(options.Quick ? 3 : 5);
            foreach (string url in new[] { rpcUrl, aspNetUrl, peerUrl })
            {
                await LoadAsync(url, warmUp);
            }
            var rpcSamples = new double[runs];
            var aspNetSamples = new double[runs];
            var peerSamples = new double[runs];
            var rpcRatios = new double[runs];
            var aspNetRatios = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                // The order turns each run, so neither integration always runs right after the peer.
                for (int turn = 0; turn < 3; turn++)
                {
                    switch ((turn + r) % 3)
                    {
                        case 0: rpcSamples[r] = await LoadAsync(rpcUrl, runTime); break;
                        case 1: aspNetSamples[r] = await LoadAsync(aspNetUrl, runTime); break;
                        default: peerSamples[r] = await LoadAsync(peerUrl, runTime); break;
                    }
                }
                rpcRatios[r] = rpcSamples[r] / peerSamples[r];
                aspNetRatios[r] = aspNetSamples[r] / peerSamples[r];
                Console.WriteLine($"  run {r + 1}: RpcHttp {rpcSamples[r]:F0} req/s, ASP.NET Core integration {aspNetSamples[r]:F0} req/s, bare ASP.NET Core {peerSamples[r]:F0} req/s");
            }
            var figures = new List<(string, double)>
            {
                ("rpchttp_rps", Measure.Median(rpcSamples)),
                ("aspnetcore_rps", Measure.Median(aspNetSamples)),
                ("aspnet_bare_rps", Measure.Median(peerSamples)),
                ("rpchttp_ratio", Measure.Median(rpcRatios)),
                ("aspnetcore_ratio", Measure.Median(aspNetRatios)),
            };
            (double traced, double overhead) = await TracingAsync(aspNetApp, data, path, runs, runTime, warmUp);
            figures.Add(("http_rps_traced", traced));
            figures.Add(("tracing_overhead_ratio", overhead));
            int sequences = options.Quick ? 40 : 200;
            int fanOut = options.Quick ? 200 : 1000;
            await using (DurableBackend sqlite = await DurableBackend.SqliteAsync(Path.Combine(data, "bench-durable.db")))
            {
                (double orchPerS, double actPerS) = await DurableAsync("sqlite", rpcApp, data, sqlite, quiet, sequences, fanOut);
                figures.Add(("sqlite_seq5_orch_per_s", orchPerS));
                figures.Add(("sqlite_fanout_act_per_s", actPerS));
            }
            if (BenchServers.AzuriteConnectionString() is { } azurite)
            {
                await using DurableBackend azure = await DurableBackend.AzureStorageAsync(azurite, "bench" + Guid.NewGuid().ToString("N")[..10], quiet,
                    maxQueuePollingInterval: TimeSpan.FromSeconds(1));
                try
                {
                    (double orchPerS, double actPerS) = await DurableAsync("azurite", rpcApp, data, azure, quiet, sequences / 4, fanOut / 2);
                    figures.Add(("azurite_seq5_orch_per_s", orchPerS));
                    figures.Add(("azurite_fanout_act_per_s", actPerS));
                }
                finally
                {
                    await azure.Service.DeleteAsync();
                }
            }
            else
            {
                Console.WriteLine("  azurite: SERVERLESS_TEST_AZURITE_BLOB/QUEUE/TABLE not set, no azurite_* figures");
            }
            Console.WriteLine(Measure.Result(Name, [.. figures]));
            return 0;
        }
        finally
        {
            await peer.StopAsync();
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// The cost of tracing: two serverless-host processes with the ASP.NET sample app, one exporting every span
    /// (host and worker) over OTLP/HTTP to a receiver in this process that decodes it, one with export off (the
    /// default). Taking turns in every run; the ratio is untraced over traced, the median of the runs' ratios.
    /// </summary>
    private static async Task<(double TracedRps, double OverheadRatio)> TracingAsync(string app, string data, string path, int runs, TimeSpan runTime, TimeSpan warmUp)
    {
        await using var receiver = await Serverless.Telemetry.Collection.OtlpReceiver.StartAsync();
        using var plain = HostProcess.Start(app, Path.Combine(data, "untraced"), new Dictionary<string, string>());
        using var traced = HostProcess.Start(app, Path.Combine(data, "traced"), receiver.ExporterEnvironment);
        string plainUrl = await plain.AddressAsync() + path;
        string tracedUrl = await traced.AddressAsync() + path;
        await LoadAsync(plainUrl, warmUp);
        await LoadAsync(tracedUrl, warmUp);
        var tracedSamples = new double[runs];
        var ratios = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            double untraced;
            if (r % 2 == 0)
            {
                untraced = await LoadAsync(plainUrl, runTime);
                tracedSamples[r] = await LoadAsync(tracedUrl, runTime);
            }
            else
            {
                tracedSamples[r] = await LoadAsync(tracedUrl, runTime);
                untraced = await LoadAsync(plainUrl, runTime);
            }
            ratios[r] = untraced / tracedSamples[r];
            Console.WriteLine($"  tracing run {r + 1}: untraced {untraced:F0} req/s, traced {tracedSamples[r]:F0} req/s ({receiver.Spans.Count} spans received so far)");
        }
        if (receiver.Spans.Count == 0) throw new InvalidOperationException("the traced host exported no spans");
        return (Measure.Median(tracedSamples), Measure.Median(ratios));
    }

    /// <summary>serverless-host as a process of its own (its telemetry is process-wide, so a traced and an untraced host cannot share one).</summary>
    private sealed class HostProcess : IDisposable
    {
        private readonly Process _process;
        private readonly TaskCompletionSource<string> _address = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private HostProcess(Process process) => _process = process;

        public static HostProcess Start(string app, string dataDirectory, IReadOnlyDictionary<string, string> environment)
        {
            Directory.CreateDirectory(dataDirectory);
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { typeof(LocalHost).Assembly.Location, app, "--port", "0", "--data-dir", dataDirectory, "--keys", Path.Combine(dataDirectory, "keys.json") })
                start.ArgumentList.Add(a);
            foreach (var (k, v) in environment) start.Environment[k] = v;
            var host = new HostProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start"));
            host._process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line && line.StartsWith("Listening on ", StringComparison.Ordinal)) host._address.TrySetResult(line.Split(' ')[2]);
            };
            host._process.ErrorDataReceived += (_, _) => { };
            host._process.BeginOutputReadLine();
            host._process.BeginErrorReadLine();
            return host;
        }

        public Task<string> AddressAsync() => _address.Task.WaitAsync(TimeSpan.FromSeconds(90));

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
            _process.Dispose();
        }
    }

    private static string BuildOutput(string key) =>
        typeof(FuncHostSuite).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static Task<LocalHost> StartHostAsync(string appDirectory, string dataDirectory, ILoggerFactory loggers) =>
        LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = appDirectory,
            HttpPort = 0,
            DataDirectory = dataDirectory,
            Keys = FunctionKeys.Generate(),
            LoggerFactory = loggers,
        });

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');

    /// <summary>Requests per second from <see cref="Workers"/> concurrent clients for <paramref name="duration"/>; every answer is checked.</summary>
    private static Task<double> LoadAsync(string url, TimeSpan duration) =>
        Measure.ClosedLoopRequestsPerSecondAsync(Workers, duration, async (client, w) =>
        {
            var body = $"worker {w} says hello";
            using var content = new StringContent(body, Encoding.UTF8, "text/plain");
            using var response = await client.PostAsync(url, content);
            response.EnsureSuccessStatusCode();
            var echo = await response.Content.ReadAsStringAsync();
            if (!echo.Contains(body, StringComparison.Ordinal)) throw new InvalidOperationException("wrong echo");
        });

    /// <summary>
    /// One local host (a fresh worker) on <paramref name="backend"/>: <paramref name="sequences"/> HelloSequence5
    /// orchestrations started together, then one FanOutFanIn of <paramref name="fanOut"/> activities. Completion
    /// is polled every 20 ms, so the figure is the engine's and the worker's, not a client's polling interval.
    /// </summary>
    private static async Task<(double OrchPerS, double ActPerS)> DurableAsync(string label, string appDirectory, string data, DurableBackend backend,
        ILoggerFactory loggers, int sequences, int fanOut)
    {
        await using LocalHost host = await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = appDirectory,
            HttpPort = 0,
            DataDirectory = data,
            Keys = FunctionKeys.Generate(),
            LoggerFactory = loggers,
            Durable = backend,
        });
        var client = new TaskHubClient(backend.Client);
        await RunAllAsync(client, Enumerable.Range(0, 4).Select(_ => ("HelloSequence5", (object?)null))); // warm-up
        var watch = Stopwatch.StartNew();
        await RunAllAsync(client, Enumerable.Range(0, sequences).Select(_ => ("HelloSequence5", (object?)null)));
        double orchPerS = sequences / watch.Elapsed.TotalSeconds;
        watch.Restart();
        await RunAllAsync(client, [("FanOutFanIn", fanOut)]);
        double actPerS = fanOut / watch.Elapsed.TotalSeconds;
        Console.WriteLine($"  {label}: {sequences} x HelloSequence5 {orchPerS:F1} orch/s; fan-out of {fanOut} {actPerS:F0} activities/s");
        return (orchPerS, actPerS);
    }

    private static async Task RunAllAsync(TaskHubClient client, IEnumerable<(string Name, object? Input)> orchestrations)
    {
        var pending = new List<OrchestrationInstance>();
        foreach ((string name, object? input) in orchestrations)
        {
            pending.Add(await client.CreateOrchestrationInstanceAsync(name, string.Empty, input));
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        while (pending.Count > 0)
        {
            for (int i = pending.Count - 1; i >= 0; i--)
            {
                OrchestrationState? state = await client.GetOrchestrationStateAsync(pending[i]);
                switch (state?.OrchestrationStatus)
                {
                    case OrchestrationStatus.Completed:
                        pending.RemoveAt(i);
                        break;
                    case OrchestrationStatus.Failed or OrchestrationStatus.Terminated or OrchestrationStatus.Canceled:
                        throw new InvalidOperationException($"{state.Name} ended {state.OrchestrationStatus}");
                }
            }
            if (pending.Count > 0)
            {
                await Task.Delay(20, timeout.Token);
            }
        }
    }
}
