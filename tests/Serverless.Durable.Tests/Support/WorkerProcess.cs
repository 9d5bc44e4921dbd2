using System.Diagnostics;
using System.Text;

namespace Serverless.Durable.Tests.Support;

/// <summary>A Serverless.Durable.TestWorker process, run with this test assembly's runtimeconfig and deps.</summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private WorkerProcess(Process process) => _process = process;

    public static WorkerProcess Start(TestHub hub, TimeSpan lease, string? killAt = null, bool recordEpisodes = false)
    {
        var dir = AppContext.BaseDirectory;
        var testAssembly = Path.Combine(dir, "Serverless.Durable.Tests");
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "exec", "--runtimeconfig", testAssembly + ".runtimeconfig.json", "--depsfile", testAssembly + ".deps.json",
                     Path.Combine(dir, "Serverless.Durable.TestWorker.dll"), hub.Backend,
                     hub.Backend == "postgres" ? hub.Options.PostgresConnectionString! : hub.Options.SqlitePath!,
                     hub.Options.HubName, ((int)lease.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(a);
        if (recordEpisodes) info.ArgumentList.Add("--record-episodes");
        info.Environment["DURABLE_KILL_AT"] = killAt ?? "";
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the test worker");
        var worker = new WorkerProcess(process);
        process.OutputDataReceived += (_, e) => { lock (worker._output) worker._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (worker._output) worker._output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    public string Output { get { lock (_output) return _output.ToString(); } }

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until the worker printed "ready" (its host started and polls).</summary>
    public async Task WaitForReadyAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains("ready", StringComparison.Ordinal))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
                throw new InvalidOperationException("The test worker did not start: " + Output);
            await Task.Delay(20);
        }
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Waits for the process to die by itself (at its kill point).</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); return true; }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Kills the whole process tree at once (no graceful shutdown).</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        try { Kill(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
