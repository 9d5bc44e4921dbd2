using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Serverless.Testing;

/// <summary>
/// <c>dotnet serverless-host.dll &lt;app build output&gt; --port 0 --data-dir DIR</c> as its own process, as the
/// README runs it: the URL it prints, a graceful stop (SIGTERM), a crash (SIGKILL of the whole tree) and a
/// worker crash (SIGKILL of the worker alone, which the host restarts).
/// </summary>
public sealed partial class LocalHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private LocalHostProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the host printed so far (its log and the worker's).</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <param name="hostDll">serverless-host.dll of this build.</param>
    /// <param name="appDirectory">The function app's build output.</param>
    /// <param name="dataDirectory">The host's data directory (its durable store, queues, schedules).</param>
    /// <param name="environment">Extra environment for the host (and so for its worker).</param>
    public static async Task<LocalHostProcess> StartAsync(string hostDll, string appDirectory, string dataDirectory,
        TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? environment = null, params string[] extraArguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = dataDirectory,
        };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        foreach (var a in new[] { hostDll, appDirectory, "--port", "0", "--data-dir", dataDirectory,
                     "--keys", Path.Combine(dataDirectory, "host-keys.json") }.Concat(extraArguments))
            start.ArgumentList.Add(a);
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start serverless-host");
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new StringBuilder();
        void Line(string? line)
        {
            if (line is null) return;
            lock (output) output.AppendLine(line);
            if (ListeningLine().Match(line) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups[1].Value));
        }
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(listening.Task, exited, Task.Delay(timeout ?? TimeSpan.FromMinutes(2)));
        if (first != listening.Task)
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            lock (output) throw new InvalidOperationException($"serverless-host did not start listening:\n{output}");
        }
        var host = new LocalHostProcess(process, listening.Task.Result);
        lock (output) host._output.Append(output);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (host._output) host._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (host._output) host._output.AppendLine(e.Data); };
        return host;
    }

    /// <summary>SIGTERM, as a platform stops an instance; the exit code once it has stopped.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!) await kill.WaitForExitAsync();
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    /// <summary>
    /// The worker process the host started (its child), or null while there is none (e.g. between a worker
    /// crash and its restart). Read from /proc: the host does not print its worker's pid.
    /// </summary>
    public int? WorkerProcessId()
    {
        foreach (string task in Directory.EnumerateDirectories($"/proc/{_process.Id}/task"))
        {
            string children;
            try { children = File.ReadAllText(Path.Combine(task, "children")); }
            catch (IOException) { continue; }
            foreach (string child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                return int.Parse(child, System.Globalization.CultureInfo.InvariantCulture);
        }
        return null;
    }

    /// <summary>A worker crash: SIGKILL of the worker alone. False when there was no worker to kill.</summary>
    public bool CrashWorker()
    {
        if (WorkerProcessId() is not int pid) return false;
        try
        {
            using var worker = Process.GetProcessById(pid);
            worker.Kill();
        }
        catch (ArgumentException) { return false; }   // it exited between the two reads
        WaitUntilGone(pid);
        return true;
    }

    /// <summary>
    /// Until the process no longer runs (gone, or a zombie: killed, not yet reaped). Process.WaitForExit only
    /// works for our own children, and the worker is the host's.
    /// </summary>
    private static void WaitUntilGone(int pid)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            string stat;
            try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
            catch (IOException) { return; }
            // "pid (comm) S ...": the state is the first field after the command name.
            int close = stat.LastIndexOf(')');
            if (close < 0 || close + 2 >= stat.Length || stat[close + 2] is 'Z' or 'X') return;
            Thread.Sleep(5);
        }
        throw new TimeoutException($"process {pid} did not die");
    }

    /// <summary>A crash: SIGKILL of the host and its worker at once.</summary>
    public void Crash()
    {
        int? worker = _process.HasExited ? null : WorkerProcessId();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
        // The host's exit does not mean its worker has stopped: a test that reads the effects "at the kill" must
        // read them once both are dead.
        if (worker is int pid) WaitUntilGone(pid);
    }

    public ValueTask DisposeAsync()
    {
        Crash();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    [GeneratedRegex(@"Listening on (https?://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();
}
