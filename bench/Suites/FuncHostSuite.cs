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
/// The local Functions host (runtime/Serverless.Host) with the real isolated worker: HTTP-trigger
/// requests/s through RpcHttp (Kestrel -> gRPC stream -> worker process -> back) on the sample app's Echo
/// function, beside a bare ASP.NET Core endpoint doing the same echo in this process. Both on Kestrel at
/// 127.0.0.1, the same bounded loop of concurrent clients, alternating runs; medians and the median of
/// the paired ratios (load that drifts over the suite cancels within a pair).
/// </summary>
internal sealed class FuncHostSuite : IBenchSuite
{
    public string Name => "funchost";

    private const int Workers = 4;

    public async Task<int> RunAsync(BenchOptions options)
    {
        int runs = options.Quick ? 5 : 9;
        TimeSpan runTime = TimeSpan.FromSeconds(options.Quick ? 1 : 4);
        string appDirectory = typeof(FuncHostSuite).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "SampleAppDirectory").Value!;
        string data = Directory.CreateTempSubdirectory("serverless-bench-funchost-").FullName;
        Console.WriteLine($"funchost: {Environment.ProcessorCount} cores; {runs} runs x {runTime.TotalSeconds}s per server, {Workers} client workers; app {appDirectory}");

        using ILoggerFactory quiet = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using LocalHost host = await LocalHost.StartAsync(new LocalHostOptions
        {
            AppDirectory = appDirectory,
            HttpPort = 0,
            DataDirectory = data,
            Keys = FunctionKeys.Generate(),
            LoggerFactory = quiet,
        });

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
            string hostUrl = host.HttpAddress + "api/items/bench/7?q=x";
            string peerUrl = Address(peer) + "/api/items/bench/7?q=x";
            await LoadAsync(hostUrl, TimeSpan.FromSeconds(1)); // warm-up: JIT on both sides, connections
            await LoadAsync(peerUrl, TimeSpan.FromSeconds(1));
            var hostSamples = new double[runs];
            var peerSamples = new double[runs];
            var ratios = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                hostSamples[r] = await LoadAsync(hostUrl, runTime);
                peerSamples[r] = await LoadAsync(peerUrl, runTime);
                ratios[r] = hostSamples[r] / peerSamples[r];
                Console.WriteLine($"  run {r + 1}: local host + worker (RpcHttp) {hostSamples[r]:F0} req/s, bare ASP.NET Core {peerSamples[r]:F0} req/s");
            }
            Console.WriteLine(Measure.Result(Name,
            [
                ("rpchttp_rps", Measure.Median(hostSamples)),
                ("aspnet_rps", Measure.Median(peerSamples)),
                ("rpchttp_ratio_vs_aspnet", Measure.Median(ratios)),
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
