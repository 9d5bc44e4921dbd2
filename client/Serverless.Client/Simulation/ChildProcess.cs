using System.Text.RegularExpressions;

namespace Serverless.Client.Simulation;

/// <summary>A process the simulation started: output to a log file, stopped (killed) by its own id only.</summary>
internal sealed partial class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process, StreamWriter log, string name)
    {
        _process = process;
        _log = log;
        Name = name;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>dotnet &lt;dll&gt; args</c> with its output appended to <paramref name="logPath"/>.</summary>
    public static ChildProcess StartDotnet(string name, string dll, IEnumerable<string> args, string logPath, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
        {
            if (v is null) start.Environment.Remove(k);
            else start.Environment[k] = v;
        }
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {name}");
        var child = new ChildProcess(process, log, name);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data, "out");
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data, "err");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => child._listening.TrySetException(new InvalidOperationException($"{name} exited (code {SafeExitCode(process)}) before listening; see {logPath}"));
        return child;
    }

    private void OnLine(string? line, string stream)
    {
        if (line is null) return;
        lock (_log) _log.WriteLine(stream == "err" ? "! " + line : line);
        if (ListeningLine().Match(line) is { Success: true } m && Uri.TryCreate(m.Groups[1].Value, UriKind.Absolute, out var uri)) _listening.TrySetResult(uri);
    }

    /// <summary>The address of the host's "listening on ..." line.</summary>
    public async Task<Uri> WaitListeningAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cancel.CancelAfter(timeout);
        try
        {
            return await _listening.Task.WaitAsync(cancel.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{Name} did not start listening within {timeout.TotalSeconds:F0} s");
        }
    }

    /// <summary>SIGKILL (a crash, for dropout injection and at the end): this process only, by its id.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true); // the local host's worker process goes with it
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        lock (_log) _log.Dispose();
    }

    private static int SafeExitCode(Process p)
    {
        try { return p.ExitCode; } catch (InvalidOperationException) { return -1; }
    }

    [GeneratedRegex(@"[Ll]istening on (https?://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();
}
