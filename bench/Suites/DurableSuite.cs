using System.Diagnostics;
using Serverless.Durable;
using Serverless.Durable.Backends.Postgres;
using Serverless.Durable.Backends.Sqlite;

namespace Serverless.Bench.Suites;

/// <summary>
/// The durable engine: "hello sequence of 5 activities" orchestrations per second (many instances
/// at once), activities per second in one fan-out/fan-in, and end-to-end latency of a single
/// sequence-of-5 on an idle worker (schedule -> observed completion). Backends side by side in one
/// run: SQLite with durability <c>normal</c> (WAL + synchronous=NORMAL, keys <c>sqlite_*</c>), SQLite
/// with durability <c>full</c> (fsync every commit, what host.json ships; keys <c>sqlite_full_*</c>)
/// and PostgreSQL (only with SERVERLESS_TEST_POSTGRES or --pg "connection string"; else <c>skip</c>).
/// </summary>
internal sealed class DurableSuite : IBenchSuite
{
    public string Name => "durable";

    public async Task<int> RunAsync(BenchOptions options)
    {
        var sizes = options.Quick ? new Sizes(SeqInstances: 150, FanOut: 400, LatencyRuns: 30) : new Sizes(1000, 2000, 200);
        var pg = PgConnectionString(options.Args);
        Console.WriteLine($"durable: {Environment.ProcessorCount} cores; seq5 x {sizes.SeqInstances} instances, fan-out of {sizes.FanOut}, " +
                          $"{sizes.LatencyRuns} latency runs; SQLite files under {BenchDirectory}");

        // The two SQLite modes alternate in rounds (normal first in even rounds, full first in odd ones)
        // so drift in the shared machine's load hits both alike; each figure is the median over rounds.
        var rounds = options.Quick ? 1 : 3;
        var normalRuns = new List<Figures>();
        var fullRuns = new List<Figures>();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var durability in round % 2 == 0 ? new[] { SqliteDurability.Normal, SqliteDurability.Full } : new[] { SqliteDurability.Full, SqliteDurability.Normal })
            {
                var label = $"sqlite ({(durability == SqliteDurability.Full ? "full" : "normal")}, round {round + 1}/{rounds})";
                var run = await RunBackendAsync(label, Sqlite(durability), sizes);
                (durability == SqliteDurability.Full ? fullRuns : normalRuns).Add(run);
            }
        }
        var normal = MedianOf(normalRuns);
        var full = MedianOf(fullRuns);
        var figures = new List<(string, object)>();
        AddFigures(figures, "sqlite", normal);
        AddFigures(figures, "sqlite_full", full);
        var seqRatio = full.SeqPerSecond / normal.SeqPerSecond;
        figures.Add(("sqlite_full_vs_normal_seq5", seqRatio));
        Console.WriteLine($"sqlite medians of {rounds} round(s): normal seq5 {normal.SeqPerSecond:F1}/s, fan-out {normal.FanOutPerSecond:F0}/s, p50 {normal.P50:F1} ms; " +
                          $"full seq5 {full.SeqPerSecond:F1}/s, fan-out {full.FanOutPerSecond:F0}/s, p50 {full.P50:F1} ms");
        Console.WriteLine($"sqlite full / normal: seq5 {seqRatio:F2}x, fan-out {full.FanOutPerSecond / normal.FanOutPerSecond:F2}x, " +
                          $"idle p50 {full.P50 - normal.P50:+0.0;-0.0} ms, p99 {full.P99 - normal.P99:+0.0;-0.0} ms");
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
            var postgres = await RunBackendAsync("postgres", new DurableTaskOptions
            {
                StorageProvider = DurableStorageProvider.Postgres,
                PostgresConnectionString = pg,
            }, sizes);
            AddFigures(figures, "pg", postgres);
        }
        // Published peers (Durable Functions docs / papers), printed beside ours for the reader; not measured here.
        Console.WriteLine("peers (published): Azure Storage backend ~5 activities/s sequential per instance, fan-out ~100 activities/s; " +
                          "MSSQL provider ~21 orchestrations/s (2 vCores); Netherite 50-300 HelloSequence5 orchestrations/s");
        Console.WriteLine(Measure.Result(Name, figures));
        return 0;
    }

    private static readonly string BenchDirectory = Path.Combine(Path.GetTempPath(), "serverless-bench");

    private static DurableTaskOptions Sqlite(SqliteDurability durability) =>
        new() { StorageProvider = DurableStorageProvider.Sqlite, SqliteDurability = durability };

    private static Figures MedianOf(List<Figures> runs)
    {
        var values = new double[runs.Count];
        double Median(Func<Figures, double> pick)
        {
            for (var i = 0; i < runs.Count; i++) values[i] = pick(runs[i]);
            return Measure.Median(values);
        }
        return new Figures(Median(f => f.SeqPerSecond), Median(f => f.FanOutPerSecond), Median(f => f.P50), Median(f => f.P99));
    }

    private static void AddFigures(List<(string, object)> figures, string prefix, Figures f)
    {
        figures.Add(($"{prefix}_seq5_orch_per_s", f.SeqPerSecond));
        figures.Add(($"{prefix}_fanout_act_per_s", f.FanOutPerSecond));
        figures.Add(($"{prefix}_p50_ms", f.P50));
        figures.Add(($"{prefix}_p99_ms", f.P99));
    }

    private static string? PgConnectionString(string[] args)
    {
        var i = Array.IndexOf(args, "--pg");
        if (i >= 0 && i + 1 < args.Length) return args[i + 1];
        return Environment.GetEnvironmentVariable("SERVERLESS_TEST_POSTGRES") is { Length: > 0 } cs ? cs : null;
    }

    private sealed record Sizes(int SeqInstances, int FanOut, int LatencyRuns);

    private sealed record Figures(double SeqPerSecond, double FanOutPerSecond, double P50, double P99);

    /// <summary>The old engine's HelloSequence5 and FanOut workload; the taskhub suite runs it as its peer.</summary>
    internal static DurableTaskRegistry Registry() => new DurableTaskRegistry()
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

    /// <summary>
    /// Measures one backend on a fresh hub. <paramref name="backend"/> says which store and how
    /// (provider, SQLite durability, PostgreSQL connection string); the hub name, the SQLite file
    /// and the polling intervals are filled in here so every backend runs the same workload.
    /// </summary>
    private static async Task<Figures> RunBackendAsync(string label, DurableTaskOptions backend, Sizes sizes)
    {
        var hub = "bench" + Guid.NewGuid().ToString("N")[..12];
        var dbPath = Path.Combine(BenchDirectory, hub + ".db");
        var options = backend with
        {
            HubName = hub,
            SqlitePath = dbPath,
            MinPollingInterval = TimeSpan.FromMilliseconds(5),
            MaxPollingInterval = TimeSpan.FromMilliseconds(100),
        };
        var pg = options.StorageProvider == DurableStorageProvider.Postgres ? options.PostgresConnectionString : null;
        var (seqInstances, fanOut, latencyRuns) = (sizes.SeqInstances, sizes.FanOut, sizes.LatencyRuns);
        try
        {
            await using var host = await DurableTaskHost.StartAsync(options, Registry());
            var client = host.Client;

            // Warm-up (JIT, connection pools) of both workloads, so whichever backend runs first does not pay for it.
            for (var i = 0; i < 3; i++)
                await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5"));
            await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("FanOut", 20));

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
            Console.WriteLine($"{label}: seq5 {figures.SeqPerSecond:F1} orchestrations/s ({figures.SeqPerSecond * 5:F0} activities/s); " +
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
