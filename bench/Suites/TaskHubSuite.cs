using System.Diagnostics;
using DurableTask.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Serverless.Host.Durable;
using Serverless.TaskHub.Sqlite;

namespace Serverless.Bench.Suites;

/// <summary>
/// DurableTask.Core (TaskHubWorker + TaskHubClient, in process) on our SQLite orchestration
/// service: HelloSequence5 orchestrations per second (many instances at once) and activities per
/// second in one fan-out/fan-in. The peer in the same run is Microsoft's in-memory orchestration service
/// (Microsoft.DurableTask.InProcessTestHost, the local host's <c>memory</c> backend) under the same
/// TaskHubWorker and workload: the ceiling without any storage, so the ratio is what durability costs.
/// Keys: <c>taskhub_sqlite_*</c>, <c>taskhub_memory_*</c> and <c>sqlite_vs_memory_seq5</c>.
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
        var memory = new List<(double Seq, double Fan)>();
        for (var round = 0; round < rounds; round++)
        {
            // Alternate which runs first, so drift in the shared machine's load hits both alike.
            if (round % 2 == 0)
            {
                ours.Add(await RunSqliteAsync(seqInstances, fanOut));
                memory.Add(await RunMemoryAsync(seqInstances, fanOut));
            }
            else
            {
                memory.Add(await RunMemoryAsync(seqInstances, fanOut));
                ours.Add(await RunSqliteAsync(seqInstances, fanOut));
            }
        }
        var oursSeq = Measure.Median(ours.Select(r => r.Seq).ToArray());
        var oursFan = Measure.Median(ours.Select(r => r.Fan).ToArray());
        var memSeq = Measure.Median(memory.Select(r => r.Seq).ToArray());
        var memFan = Measure.Median(memory.Select(r => r.Fan).ToArray());
        Console.WriteLine($"medians: DurableTask.Core on SQLite seq5 {oursSeq:F1}/s, fan-out {oursFan:F0}/s; on the in-memory service seq5 {memSeq:F1}/s, fan-out {memFan:F0}/s");
        Console.WriteLine("goal (issue 13): >= 50 HelloSequence5 orchestrations/s on SQLite on 2 cores; published MSSQL provider figure ~21");
        Console.WriteLine(Measure.Result(Name, [
            ("taskhub_sqlite_seq5_orch_per_s", oursSeq),
            ("taskhub_sqlite_fanout_act_per_s", oursFan),
            ("taskhub_memory_seq5_orch_per_s", memSeq),
            ("taskhub_memory_fanout_act_per_s", memFan),
            ("sqlite_vs_memory_seq5", oursSeq / memSeq),
        ]));
        return 0;
    }

    private static async Task<(double Seq, double Fan)> RunSqliteAsync(int seqInstances, int fanOut)
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
        try
        {
            await service.CreateIfNotExistsAsync();
            return await RunAsync("DurableTask.Core on SQLite", service, service, seqInstances, fanOut);
        }
        finally
        {
            await service.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" })
                try { File.Delete(path + suffix); } catch (IOException) { }
        }
    }

    private static async Task<(double Seq, double Fan)> RunMemoryAsync(int seqInstances, int fanOut)
    {
        await using var backend = DurableBackend.InMemory(NullLoggerFactory.Instance, "bench");
        return await RunAsync("DurableTask.Core in memory", backend.Service, backend.Client, seqInstances, fanOut);
    }

    private static async Task<(double Seq, double Fan)> RunAsync(string label, IOrchestrationService service, IOrchestrationServiceClient serviceClient,
        int seqInstances, int fanOut)
    {
        var worker = new TaskHubWorker(service);
        try
        {
            worker.AddTaskOrchestrations(typeof(HelloSequence5), typeof(FanOut));
            worker.AddTaskActivities(typeof(Hello), typeof(Increment));
            await worker.StartAsync();
            var client = new TaskHubClient(serviceClient);
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
            Console.WriteLine($"{label}: seq5 {seq:F1} orchestrations/s ({seq * 5:F0} activities/s); fan-out {fanPerSecond:F0} activities/s");
            return (seq, fanPerSecond);
        }
        finally
        {
            await worker.StopAsync(isForced: true);
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
