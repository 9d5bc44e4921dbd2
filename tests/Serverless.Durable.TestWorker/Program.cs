using System.Diagnostics;
using Npgsql;
using Serverless.Durable;
using Serverless.Durable.Backends;
using Serverless.Durable.TestWorker;

// Usage: TestWorker <sqlite|postgres> <sqlite path | connection string> <hub> <lease ms> [--record-episodes]
// DURABLE_KILL_AT=activity:N kills this process (SIGKILL, no cleanup) as the N-th activity starts;
// DURABLE_KILL_AT=commit:N kills it inside the N-th episode commit transaction, before COMMIT.
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: TestWorker <sqlite|postgres> <path|connection string> <hub> <lease ms> [--record-episodes]");
    return 2;
}
var (backend, target, hub, leaseMs) = (args[0], args[1], args[2], int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture));
var options = new DurableTaskOptions
{
    HubName = hub,
    StorageProvider = backend == "postgres" ? DurableStorageProvider.Postgres : DurableStorageProvider.Sqlite,
    SqlitePath = backend == "postgres" ? null : target,
    PostgresConnectionString = backend == "postgres" ? target : null,
    LeaseDuration = TimeSpan.FromMilliseconds(leaseMs),
    MinPollingInterval = TimeSpan.FromMilliseconds(5),
    MaxPollingInterval = TimeSpan.FromMilliseconds(50),
    MaxConcurrentOrchestratorFunctions = 4,
    MaxConcurrentActivityFunctions = 16,
};

var killAt = Environment.GetEnvironmentVariable("DURABLE_KILL_AT");
var activityKill = killAt?.StartsWith("activity:", StringComparison.Ordinal) == true ? int.Parse(killAt[9..], System.Globalization.CultureInfo.InvariantCulture) : -1;
var commitKill = killAt?.StartsWith("commit:", StringComparison.Ordinal) == true ? int.Parse(killAt[7..], System.Globalization.CultureInfo.InvariantCulture) : -1;
var activities = 0;
var commits = 0;
static void Die()
{
    Console.Out.Flush();
    Process.GetCurrentProcess().Kill(); // SIGKILL: no finally blocks, no dispose, no graceful shutdown
}
if (commitKill > 0)
    FaultInjection.Hook = point =>
    {
        if (point == "episode-commit" && Interlocked.Increment(ref commits) == commitKill) Die();
    };

var registry = CrashWorkload.Register(new DurableTaskRegistry(), _ =>
{
    if (activityKill > 0 && Interlocked.Increment(ref activities) == activityKill) Die();
});

await using var host = await DurableTaskHost.StartAsync(options, registry);
NpgsqlDataSource? recorder = null;
if (args.Contains("--record-episodes") && backend == "postgres")
{
    recorder = NpgsqlDataSource.Create(target);
    var pid = Environment.ProcessId;
    var table = $"episodes_{hub}";
    host.Worker!.EpisodeObserver = (instanceId, start, end) =>
    {
        using var cmd = recorder.CreateCommand($"INSERT INTO {table} (instance_id, pid, started_at, ended_at) VALUES (@i, @p, @s, @e)");
        cmd.Parameters.AddWithValue("i", instanceId);
        cmd.Parameters.AddWithValue("p", pid);
        cmd.Parameters.AddWithValue("s", start.Ticks);
        cmd.Parameters.AddWithValue("e", end.Ticks);
        cmd.ExecuteNonQuery();
    };
}
Console.WriteLine("ready");
// Runs until the test kills it or closes standard input.
await Task.Run(() => Console.In.ReadToEnd());
if (recorder is not null) await recorder.DisposeAsync();
return 0;
