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
/// suite cancels within a run).
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
            Console.WriteLine(Measure.Result(Name,
            [
                ("rpchttp_rps", Measure.Median(rpcSamples)),
                ("aspnetcore_rps", Measure.Median(aspNetSamples)),
                ("aspnet_bare_rps", Measure.Median(peerSamples)),
                ("rpchttp_ratio", Measure.Median(rpcRatios)),
                ("aspnetcore_ratio", Measure.Median(aspNetRatios)),
            ]));
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
}
