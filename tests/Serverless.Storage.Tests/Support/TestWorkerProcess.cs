using System.Diagnostics;

namespace Serverless.Storage.Tests.Support;

/// <summary>Starts the test worker (tests/Serverless.Storage.Tests/TestWorker) as a real child process.</summary>
internal static class TestWorkerProcess
{
    public static string WorkerDll
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "Serverless.Storage.TestWorker.dll");
            Assert.True(File.Exists(path), $"the test worker was not built next to the tests: {path}");
            return path;
        }
    }

    public static Process Start(IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(WorkerDll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("SERVERLESS_DATA_DIR");
        info.Environment["DOTNET_gcServer"] = "0";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        return Process.Start(info) ?? throw new InvalidOperationException("could not start the test worker");
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunToEndAsync(IEnumerable<string> args, int timeoutSeconds = 60)
    {
        using var process = Start(args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
