using System.Diagnostics;
using Serverless.Durable;
using Serverless.Durable.Backends.Postgres;

namespace Serverless.Bench.Suites;

/// <summary>
/// The durable engine: "hello sequence of 5 activities" orchestrations per second (many instances
/// at once), activities per second in one fan-out/fan-in, and end-to-end latency of a single
/// sequence-of-5 on an idle worker (schedule -> observed completion), on SQLite and on PostgreSQL
/// (PostgreSQL only with SERVERLESS_TEST_POSTGRES or --pg "connection string"; else `skip`).
/// </summary>
internal sealed class DurableSuite : IBenchSuite
{
    public string Name => "durable";

    public async Task<int> RunAsync(BenchOptions options)
    {
        var seqInstances = options.Quick ? 200 : 1000;
        var fanOut = options.Quick ? 500 : 2000;
        var latencyRuns = options.Quick ? 40 : 200;
        var pg = PgConnectionString(options.Args);
        Console.WriteLine($"durable: {Environment.ProcessorCount} cores; seq5 x {seqInstances} instances, fan-out of {fanOut}, {latencyRuns} latency runs");

        var figures = new List<(string, object)>();
        var sqlite = await RunBackendAsync("sqlite", seqInstances, fanOut, latencyRuns, null);
        figures.Add(("sqlite_seq5_orch_per_s", sqlite.SeqPerSecond));
        figures.Add(("sqlite_fanout_act_per_s", sqlite.FanOutPerSecond));
        figures.Add(("sqlite_p50_ms", sqlite.P50));
        figures.Add(("sqlite_p99_ms", sqlite.P99));
        if (pg is null)
        {
            Console.WriteLine("postgres: skip (set SERVERLESS_TEST_POSTGRES or pass --pg \"Host=...\")");
            figures.Add(("pg_seq5_orch_per_s", "skip"));
            figures.Add(("pg_fanout_act_per_s", "skip"));
            figures.Add(("pg_p50_ms", "skip"));
            figures.Add(("pg_p99_ms", "skip"));
        }
        else
        {
            var p = await RunBackendAsync("postgres", seqInstances, fanOut, latencyRuns, pg);
            figures.Add(("pg_seq5_orch_per_s", p.SeqPerSecond));
            figures.Add(("pg_fanout_act_per_s", p.FanOutPerSecond));
            figures.Add(("pg_p50_ms", p.P50));
            figures.Add(("pg_p99_ms", p.P99));
        }
        // Published peers (Durable Functions docs / papers), printed beside ours for the reader; not measured here.
        Console.WriteLine("peers (published): Azure Storage backend ~5 activities/s sequential per instance, fan-out ~100 activities/s; " +
                          "MSSQL provider ~21 orchestrations/s (2 vCores); Netherite 50-300 HelloSequence5 orchestrations/s");
        Console.WriteLine(Measure.Result(Name, figures));
        return 0;
    }

    private static string? PgConnectionString(string[] args)
    {
        var i = Array.IndexOf(args, "--pg");
        if (i >= 0 && i + 1 < args.Length) return args[i + 1];
        return Environment.GetEnvironmentVariable("SERVERLESS_TEST_POSTGRES") is { Length: > 0 } cs ? cs : null;
    }

    private sealed record Figures(double SeqPerSecond, double FanOutPerSecond, double P50, double P99);

    private static DurableTaskRegistry Registry() => new DurableTaskRegistry()
        .AddActivity<string, string>("Hello", name => $"Hello {name}!")
        .AddActivity<int, int>("Inc", x => x + 1)
        .AddOrchestrator("HelloSequence5", async ctx =>
        {
            var results = new string[5];
            for (var i = 0; i < 5; i++) results[i] = await ctx.CallActivityAsync<string>("Hello", "city" + i);
            return results;
        })
        .AddOrchestrator<int, long>("FanOut", async (ctx, n) =>
        {
            var tasks = new Task<int>[n];
            for (var i = 0; i < n; i++) tasks[i] = ctx.CallActivityAsync<int>("Inc", i);
            long sum = 0;
            foreach (var r in await Task.WhenAll(tasks)) sum += r;
            return sum;
        });

    private static async Task<Figures> RunBackendAsync(string backend, int seqInstances, int fanOut, int latencyRuns, string? pg)
    {
        var hub = "bench" + Guid.NewGuid().ToString("N")[..12];
        var dbPath = Path.Combine(Path.GetTempPath(), "serverless-bench", hub + ".db");
        var options = new DurableTaskOptions
        {
            HubName = hub,
            StorageProvider = pg is null ? DurableStorageProvider.Sqlite : DurableStorageProvider.Postgres,
            SqlitePath = dbPath,
            PostgresConnectionString = pg,
            MinPollingInterval = TimeSpan.FromMilliseconds(5),
            MaxPollingInterval = TimeSpan.FromMilliseconds(100),
        };
        try
        {
            await using var host = await DurableTaskHost.StartAsync(options, Registry());
            var client = host.Client;

            // Warm-up (JIT, connection pools).
            for (var i = 0; i < 3; i++)
                await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5"));

            // Latency: one instance at a time on an idle worker.
            var latencies = new double[latencyRuns];
            for (var i = 0; i < latencyRuns; i++)
            {
                var start = Stopwatch.GetTimestamp();
                var id = await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5");
                await client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: false);
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }

            // Throughput: many sequences at once.
            var sw = Stopwatch.StartNew();
            var ids = new string[seqInstances];
            for (var i = 0; i < seqInstances; i++) ids[i] = await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5");
            foreach (var id in ids)
            {
                var m = await client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: false);
                if (m.RuntimeStatus != OrchestrationRuntimeStatus.Completed) throw new InvalidOperationException($"{id} ended {m.RuntimeStatus}");
            }
            var seqPerSecond = seqInstances / sw.Elapsed.TotalSeconds;

            // Fan-out / fan-in.
            sw.Restart();
            var fan = await client.ScheduleNewOrchestrationInstanceAsync("FanOut", fanOut);
            var done = await client.WaitForInstanceCompletionAsync(fan);
            var expected = (long)fanOut * (fanOut + 1) / 2;
            if (done.ReadOutputAs<long>() != expected) throw new InvalidOperationException($"fan-out sum {done.SerializedOutput} != {expected}");
            var fanPerSecond = fanOut / sw.Elapsed.TotalSeconds;

            var figures = new Figures(seqPerSecond, fanPerSecond, Measure.Percentile(latencies, 0.5), Measure.Percentile(latencies, 0.99));
            Console.WriteLine($"{backend}: seq5 {figures.SeqPerSecond:F1} orchestrations/s ({figures.SeqPerSecond * 5:F0} activities/s); " +
                              $"fan-out {figures.FanOutPerSecond:F0} activities/s; idle latency p50 {figures.P50:F1} ms, p99 {figures.P99:F1} ms");
            return figures;
        }
        finally
        {
            if (pg is not null)
            {
                await using var backendToDrop = new PostgresBackend(pg, hub, TimeProvider.System);
                await backendToDrop.DropAsync(CancellationToken.None);
            }
            foreach (var suffix in new[] { "", "-wal", "-shm" })
                try { File.Delete(dbPath + suffix); } catch (IOException) { }
        }
    }
}
