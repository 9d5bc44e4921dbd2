using System.Diagnostics;
using DurableTask.Core;
using Serverless.Durable;
using Serverless.TaskHub.Sqlite;

namespace Serverless.Bench.Suites;

/// <summary>
/// DurableTask.Core (TaskHubWorker + TaskHubClient, in process) on our SQLite orchestration
/// service: HelloSequence5 orchestrations per second (many instances at once) and activities per
/// second in one fan-out/fan-in. DurableTask.Core ships no in-memory service (its emulator is a
/// separate package that is not served), so the peer in the same run is today's engine
/// (runtime/Serverless.Durable) on its SQLite backend, same workload, same file settings (WAL,
/// synchronous=NORMAL). Keys: <c>taskhub_sqlite_*</c> and <c>old_engine_sqlite_*</c>.
/// </summary>
internal sealed class TaskHubSuite : IBenchSuite
{
    public string Name => "taskhub";

    private static readonly string BenchDirectory = Path.Combine(Path.GetTempPath(), "serverless-bench");

    public async Task<int> RunAsync(BenchOptions options)
    {
        var (seqInstances, fanOut) = options.Quick ? (150, 400) : (1000, 2000);
        var rounds = options.Quick ? 1 : 3;
        Console.WriteLine($"taskhub: {Environment.ProcessorCount} cores; seq5 x {seqInstances} instances, fan-out of {fanOut}; {rounds} round(s), medians");
        var ours = new List<(double Seq, double Fan)>();
        var old = new List<(double Seq, double Fan)>();
        for (var round = 0; round < rounds; round++)
        {
            // Alternate which runs first, so drift in the shared machine's load hits both alike.
            if (round % 2 == 0)
            {
                ours.Add(await RunTaskHubAsync(seqInstances, fanOut));
                old.Add(await RunOldEngineAsync(seqInstances, fanOut));
            }
            else
            {
                old.Add(await RunOldEngineAsync(seqInstances, fanOut));
                ours.Add(await RunTaskHubAsync(seqInstances, fanOut));
            }
        }
        var oursSeq = Measure.Median(ours.Select(r => r.Seq).ToArray());
        var oursFan = Measure.Median(ours.Select(r => r.Fan).ToArray());
        var oldSeq = Measure.Median(old.Select(r => r.Seq).ToArray());
        var oldFan = Measure.Median(old.Select(r => r.Fan).ToArray());
        Console.WriteLine($"medians: DurableTask.Core on SQLite seq5 {oursSeq:F1}/s, fan-out {oursFan:F0}/s; old engine on SQLite seq5 {oldSeq:F1}/s, fan-out {oldFan:F0}/s");
        Console.WriteLine("goal (issue 13): >= 50 HelloSequence5 orchestrations/s on SQLite on 2 cores; published MSSQL provider figure ~21");
        Console.WriteLine(Measure.Result(Name, [
            ("taskhub_sqlite_seq5_orch_per_s", oursSeq),
            ("taskhub_sqlite_fanout_act_per_s", oursFan),
            ("old_engine_sqlite_seq5_orch_per_s", oldSeq),
            ("old_engine_sqlite_fanout_act_per_s", oldFan),
        ]));
        return 0;
    }

    private static async Task<(double Seq, double Fan)> RunTaskHubAsync(int seqInstances, int fanOut)
    {
        var path = Path.Combine(BenchDirectory, "taskhub-" + Guid.NewGuid().ToString("N")[..12] + ".db");
        var service = new SqliteOrchestrationService(new SqliteOrchestrationServiceOptions
        {
            DataSource = path,
            TaskHubName = "bench",
            PollingInterval = TimeSpan.FromMilliseconds(100),
            MaxConcurrentOrchestrations = 32,
            MaxConcurrentActivities = 32,
        });
        var worker = new TaskHubWorker(service);
        try
        {
            await service.CreateIfNotExistsAsync();
            worker.AddTaskOrchestrations(typeof(HelloSequence5), typeof(FanOut));
            worker.AddTaskActivities(typeof(Hello), typeof(Increment));
            await worker.StartAsync();
            var client = new TaskHubClient(service);
            var patience = TimeSpan.FromMinutes(5);

            async Task<OrchestrationState> RunOne(Type orchestration, object input) =>
                await client.WaitForOrchestrationAsync(await client.CreateOrchestrationInstanceAsync(orchestration, input), patience);

            for (var i = 0; i < 3; i++) await RunOne(typeof(HelloSequence5), "warm");
            await RunOne(typeof(FanOut), 20);

            var sw = Stopwatch.StartNew();
            var instances = new OrchestrationInstance[seqInstances];
            for (var i = 0; i < seqInstances; i++) instances[i] = await client.CreateOrchestrationInstanceAsync(typeof(HelloSequence5), "city");
            foreach (var instance in instances)
            {
                var state = await client.WaitForOrchestrationAsync(instance, patience);
                if (state?.OrchestrationStatus != OrchestrationStatus.Completed) throw new InvalidOperationException($"{instance.InstanceId} ended {state?.OrchestrationStatus}");
            }
            var seq = seqInstances / sw.Elapsed.TotalSeconds;

            sw.Restart();
            var fan = await RunOne(typeof(FanOut), fanOut);
            var expected = (long)fanOut * (fanOut + 1) / 2;
            if (fan?.Output != expected.ToString(System.Globalization.CultureInfo.InvariantCulture))
                throw new InvalidOperationException($"fan-out sum {fan?.Output} != {expected}");
            var fanPerSecond = fanOut / sw.Elapsed.TotalSeconds;
            Console.WriteLine($"DurableTask.Core on SQLite: seq5 {seq:F1} orchestrations/s ({seq * 5:F0} activities/s); fan-out {fanPerSecond:F0} activities/s");
            return (seq, fanPerSecond);
        }
        finally
        {
            await worker.StopAsync(isForced: true);
            await service.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" })
                try { File.Delete(path + suffix); } catch (IOException) { }
        }
    }

    private static async Task<(double Seq, double Fan)> RunOldEngineAsync(int seqInstances, int fanOut)
    {
        var hub = "bench" + Guid.NewGuid().ToString("N")[..12];
        var path = Path.Combine(BenchDirectory, hub + ".db");
        var options = new DurableTaskOptions
        {
            StorageProvider = DurableStorageProvider.Sqlite,
            SqliteDurability = Serverless.Durable.Backends.Sqlite.SqliteDurability.Normal,
            HubName = hub,
            SqlitePath = path,
            MinPollingInterval = TimeSpan.FromMilliseconds(5),
            MaxPollingInterval = TimeSpan.FromMilliseconds(100),
        };
        var registry = DurableSuite.Registry();
        try
        {
            await using var host = await DurableTaskHost.StartAsync(options, registry);
            var client = host.Client;
            for (var i = 0; i < 3; i++) await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5"));
            await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("FanOut", 20));

            var sw = Stopwatch.StartNew();
            var ids = new string[seqInstances];
            for (var i = 0; i < seqInstances; i++) ids[i] = await client.ScheduleNewOrchestrationInstanceAsync("HelloSequence5");
            foreach (var id in ids)
            {
                var m = await client.WaitForInstanceCompletionAsync(id, getInputsAndOutputs: false);
                if (m.RuntimeStatus != OrchestrationRuntimeStatus.Completed) throw new InvalidOperationException($"{id} ended {m.RuntimeStatus}");
            }
            var seq = seqInstances / sw.Elapsed.TotalSeconds;

            sw.Restart();
            var done = await client.WaitForInstanceCompletionAsync(await client.ScheduleNewOrchestrationInstanceAsync("FanOut", fanOut));
            if (done.ReadOutputAs<long>() != (long)fanOut * (fanOut + 1) / 2) throw new InvalidOperationException("fan-out sum wrong");
            var fanPerSecond = fanOut / sw.Elapsed.TotalSeconds;
            Console.WriteLine($"old engine on SQLite: seq5 {seq:F1} orchestrations/s; fan-out {fanPerSecond:F0} activities/s");
            return (seq, fanPerSecond);
        }
        finally
        {
            foreach (var suffix in new[] { "", "-wal", "-shm" })
                try { File.Delete(path + suffix); } catch (IOException) { }
        }
    }

    private sealed class HelloSequence5 : TaskOrchestration<string[], string>
    {
        public override async Task<string[]> RunTask(OrchestrationContext context, string input)
        {
            var results = new string[5];
            for (var i = 0; i < 5; i++) results[i] = await context.ScheduleTask<string>(typeof(Hello), input + i);
            return results;
        }
    }

    private sealed class FanOut : TaskOrchestration<long, int>
    {
        public override async Task<long> RunTask(OrchestrationContext context, int input)
        {
            var tasks = new Task<int>[input];
            for (var i = 0; i < input; i++) tasks[i] = context.ScheduleTask<int>(typeof(Increment), i);
            long sum = 0;
            foreach (var r in await Task.WhenAll(tasks)) sum += r;
            return sum;
        }
    }

    private sealed class Hello : TaskActivity<string, string>
    {
        protected override string Execute(TaskContext context, string input) => $"Hello {input}!";
    }

    private sealed class Increment : TaskActivity<int, int>
    {
        protected override int Execute(TaskContext context, int input) => input + 1;
    }
}
