using System.Diagnostics;

namespace Serverless.Host.Worker;

/// <summary>
/// The isolated worker as a child process: <c>dotnet App.dll</c> from the app's build output, started
/// with the arguments and environment the Functions host gives it. Its stdout and stderr go to the log.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private int _disposed;

    private WorkerProcess(Process process) => _process = process;

    public int Id => _process.Id;

    /// <summary>Completes when the worker process exits.</summary>
    public Task Exited => _process.WaitForExitAsync();

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.HasExited ? _process.ExitCode : 0;

    /// <summary>Starts the worker; <paramref name="settings"/> (the app settings) go into its environment, as Core Tools does.</summary>
    public static WorkerProcess Start(string appDirectory, Uri hostUri, string workerId, IReadOnlyDictionary<string, string> settings, ILogger log)
    {
        (string executable, string workerPath) = ReadWorkerConfig(appDirectory);
        var start = new ProcessStartInfo(executable)
        {
            WorkingDirectory = appDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(workerPath);
        start.ArgumentList.Add("--functions-uri");
        start.ArgumentList.Add(hostUri.ToString());
        start.ArgumentList.Add("--functions-worker-id");
        start.ArgumentList.Add(workerId);
        start.ArgumentList.Add("--functions-request-id");
        start.ArgumentList.Add(Guid.NewGuid().ToString());
        start.ArgumentList.Add("--functions-grpc-max-message-length");
        start.ArgumentList.Add(int.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach ((string name, string value) in settings)
        {
            start.Environment[name] = value;
        }
        start.Environment["FUNCTIONS_APPLICATION_DIRECTORY"] = appDirectory;
        start.Environment["FUNCTIONS_WORKER_DIRECTORY"] = appDirectory;
        start.Environment["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated";
        start.Environment["AzureWebJobsScriptRoot"] = appDirectory;

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Logs.WorkerOutput(log, line); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Logs.WorkerError(log, line); };
        if (!process.Start())
        {
            throw new HostStartException($"could not start the worker '{executable} {workerPath}'");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Logs.WorkerStarted(log, process.Id, workerPath);
        return new WorkerProcess(process);
    }

    /// <summary>
    /// worker.config.json (written by the Worker.Sdk) names the executable and the app assembly, as the
    /// Functions host reads it.
    /// </summary>
    private static (string Executable, string WorkerPath) ReadWorkerConfig(string appDirectory)
    {
        string path = Path.Combine(appDirectory, "worker.config.json");
        if (!File.Exists(path))
        {
            throw new HostStartException($"{appDirectory}: no worker.config.json (is this an isolated-worker app's build output?)");
        }
        try
        {
            using JsonDocument config = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement description = config.RootElement.GetProperty("description");
            string executable = description.TryGetProperty("defaultExecutablePath", out var exe) && exe.GetString() is { Length: > 0 } e ? e : "dotnet";
            string workerPath = description.GetProperty("defaultWorkerPath").GetString()
                ?? throw new HostStartException("worker.config.json: description.defaultWorkerPath is missing");
            string fullWorkerPath = Path.GetFullPath(Path.Combine(appDirectory, workerPath));
            if (!File.Exists(fullWorkerPath))
            {
                throw new HostStartException($"worker.config.json: {workerPath} does not exist in {appDirectory}");
            }
            return (executable, fullWorkerPath);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new HostStartException($"worker.config.json: {e.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (!_process.HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // exited in between
            }
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
