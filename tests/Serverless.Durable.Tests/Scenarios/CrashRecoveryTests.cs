using Npgsql;
using Serverless.Durable.History;
using Serverless.Durable.TestWorker;
using Serverless.Durable.Tests.Support;
using Serverless.Testing;

namespace Serverless.Durable.Tests.Scenarios;

/// <summary>
/// A worker process killed (SIGKILL, never disposed) in the middle of an activity or inside an
/// episode's commit transaction; a fresh process must finish every instance with the right
/// output, each scheduled activity's result recorded exactly once.
/// </summary>
public sealed class CrashRecoveryTests
{
    public static TheoryData<string, string> KillPoints()
    {
        var data = new TheoryData<string, string>();
        foreach (var backend in TestHub.Backends)
        {
            data.Add(backend, "activity:12");
            data.Add(backend, "commit:4");
        }
        return data;
    }

    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    [Theory, MemberData(nameof(KillPoints))]
    public async Task A_killed_worker_loses_nothing_and_applies_no_result_twice(string backend, string killAt)
    {
        await using var hub = TestHub.Create(backend, o => o with { LeaseDuration = Lease });
        var client = (await hub.StartAsync(registry: null)).Client; // client only: no worker in this process
        const int Instances = 4, N = 8;
        var ids = new List<string>();
        for (var i = 0; i < Instances; i++)
            ids.Add(await client.ScheduleNewOrchestrationInstanceAsync(CrashWorkload.SumOfSquares, N, new StartOrchestrationOptions($"crash-{i}")));

        using (var doomed = WorkerProcess.Start(hub, Lease, killAt))
        {
            Assert.True(await doomed.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the worker never reached its kill point: " + doomed.Output);
            Assert.NotEqual(0, doomed.ExitCode); // killed, not a clean exit
        }
        // Something must be left to redo, or the crash proved nothing.
        var unfinished = 0;
        foreach (var id in ids)
            if (!(await client.GetInstanceAsync(id))!.IsCompleted) unfinished++;
        Assert.True(unfinished > 0);

        using var survivor = WorkerProcess.Start(hub, Lease);
        foreach (var id in ids)
        {
            var done = await client.WaitAsync(id, 90);
            Assert.True(done.RuntimeStatus == OrchestrationRuntimeStatus.Completed, $"{id}: {done.RuntimeStatus} {done.FailureDetails}\n{survivor.Output}");
            Assert.Equal(CrashWorkload.ExpectedSum(N), done.ReadOutputAs<long>());
            var history = await client.GetHistoryAsync(id);
            var scheduled = history.OfType<TaskScheduled>().Select(t => t.EventId).ToList();
            var completed = history.OfType<TaskCompleted>().Select(t => t.TaskScheduledId).ToList();
            Assert.Equal(N + 1, scheduled.Count);
            Assert.Equal(scheduled.Order(), completed.Order()); // each result recorded once, none missing
            Assert.Equal(N + 1, scheduled.Distinct().Count());
        }
    }
}

/// <summary>Two worker processes share one PostgreSQL database.</summary>
public sealed class ScaleOutTests
{
    [ServerFact]
    public async Task Two_processes_complete_500_instances_with_no_instance_run_twice_at_once()
    {
        await using var hub = TestHub.Create("postgres", o => o with { LeaseDuration = TimeSpan.FromSeconds(5) });
        var client = (await hub.StartAsync(registry: null)).Client;
        var table = $"episodes_{hub.Options.HubName}";
        await using var db = NpgsqlDataSource.Create(TestServers.PostgresConnectionString);
        await using (var create = db.CreateCommand($"CREATE TABLE {table} (instance_id text NOT NULL, pid int NOT NULL, started_at bigint NOT NULL, ended_at bigint NOT NULL)"))
            await create.ExecuteNonQueryAsync();
        try
        {
            using var a = WorkerProcess.Start(hub, hub.Options.LeaseDuration, recordEpisodes: true);
            using var b = WorkerProcess.Start(hub, hub.Options.LeaseDuration, recordEpisodes: true);
            await a.WaitForReadyAsync(TimeSpan.FromSeconds(60));
            await b.WaitForReadyAsync(TimeSpan.FromSeconds(60)); // both poll before any work exists
            const int Count = 500;
            var ids = new string[Count];
            for (var i = 0; i < Count; i++)
                ids[i] = await client.ScheduleNewOrchestrationInstanceAsync(CrashWorkload.TwoSteps, $"job{i}", new StartOrchestrationOptions($"job-{i:D3}"));
            for (var i = 0; i < Count; i++)
            {
                var done = await client.WaitAsync(ids[i], 120);
                Assert.Equal(OrchestrationRuntimeStatus.Completed, done.RuntimeStatus);
                Assert.Equal($"job{i}:0:1", done.ReadOutputAs<string>());
            }
            a.Kill();
            b.Kill();

            await using var overlaps = db.CreateCommand($"""
                SELECT count(*) FROM {table} x JOIN {table} y ON x.instance_id = y.instance_id AND x.ctid <> y.ctid
                WHERE x.started_at < y.ended_at AND y.started_at < x.ended_at
                """);
            Assert.Equal(0L, (long)(await overlaps.ExecuteScalarAsync())!);
            await using var perProcess = db.CreateCommand($"SELECT count(DISTINCT pid), count(*), count(DISTINCT instance_id) FROM {table}");
            await using var reader = await perProcess.ExecuteReaderAsync();
            await reader.ReadAsync();
            Assert.Equal(2L, reader.GetInt64(0)); // both processes did work
            Assert.True(reader.GetInt64(1) >= 3 * Count); // start + one episode per activity result
            Assert.Equal(Count, reader.GetInt64(2));
        }
        finally
        {
            await using var drop = db.CreateCommand($"DROP TABLE IF EXISTS {table}");
            await drop.ExecuteNonQueryAsync();
        }
    }
}
