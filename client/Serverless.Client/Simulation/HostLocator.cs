namespace Serverless.Client.Simulation;

/// <summary>What the simulation starts: the local Functions host and the function app's build output it runs.</summary>
internal sealed record HostLaunch(string HostDll, string AppDirectory);

/// <summary>
/// Finds the local Functions host (serverless-host.dll) and the function app's build output (the folder with
/// functions.metadata): explicit paths, <c>SERVERLESS_HOST_DLL</c> and <c>SERVERLESS_FUNCTIONS_APP</c>, or the
/// repository's Release builds, which are built first when missing or older than the sources (a clean clone
/// needs nothing else).
/// </summary>
internal static class HostLocator
{
    public const string HostDllName = "serverless-host.dll";
    public const string AppDllName = "Serverless.Functions.dll";
    private static readonly string[] SourceFolders = ["functions", "federation", "runtime", "security", "privacy", "model"];

    public static HostLaunch Find(string? hostDll, string? appDirectory, TextWriter log)
    {
        hostDll ??= Environment.GetEnvironmentVariable("SERVERLESS_HOST_DLL") is { Length: > 0 } h ? h : null;
        appDirectory ??= Environment.GetEnvironmentVariable("SERVERLESS_FUNCTIONS_APP") is { Length: > 0 } a ? a : null;
        if (hostDll is not null && !File.Exists(hostDll)) throw new FileNotFoundException($"no local Functions host at {hostDll}");
        if (appDirectory is not null && !File.Exists(Path.Combine(appDirectory, "functions.metadata")))
            throw new FileNotFoundException($"{appDirectory} is not a function app's build output (no functions.metadata)");
        if (hostDll is not null && appDirectory is not null) return new HostLaunch(Path.GetFullPath(hostDll), Path.GetFullPath(appDirectory));

        var root = RepositoryRoot() ?? throw new FileNotFoundException(
            "cannot find the function app: run from the repository (dotnet run --project client/Serverless.Client -- simulate), or pass --host-dll and --app-dir");
        hostDll ??= Build(root, Path.Combine("runtime", "Serverless.Host", "Serverless.Host.csproj"), HostDllName, log);
        appDirectory ??= Path.GetDirectoryName(Build(root, Path.Combine("functions", "Serverless.Functions", "Serverless.Functions.csproj"), AppDllName, log))!;
        return new HostLaunch(hostDll, appDirectory);
    }

    /// <summary>The Release build output of <paramref name="project"/>, built first when it is missing or older than the sources.</summary>
    private static string Build(string root, string project, string dllName, TextWriter log)
    {
        var dll = Path.Combine(root, Path.GetDirectoryName(project)!, "bin", "Release", "net10.0", dllName);
        if (File.Exists(dll) && File.GetLastWriteTimeUtc(dll) >= NewestSource(root)) return dll;
        log.WriteLine($"building {project} (Release) ...");
        var build = Process.Start(new ProcessStartInfo("dotnet", ["build", Path.Combine(root, project), "-c", "Release", "--nologo", "-v", "q"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root,
        }) ?? throw new InvalidOperationException("could not start dotnet build");
        var output = build.StandardOutput.ReadToEndAsync();
        var error = build.StandardError.ReadToEndAsync();
        build.WaitForExit();
        if (build.ExitCode != 0 || !File.Exists(dll))
            throw new InvalidOperationException($"building {project} failed: {Tail(output.Result + error.Result)}");
        // The build leaves an unchanged output's time alone; touch it so the next run does not build again.
        File.SetLastWriteTimeUtc(dll, DateTime.UtcNow);
        return dll;
    }

    private static string? RepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serverless.sln")) && Directory.Exists(Path.Combine(dir.FullName, "functions"))) return dir.FullName;
        }
        return null;
    }

    private static DateTime NewestSource(string root)
    {
        var newest = DateTime.MinValue;
        foreach (var folder in SourceFolders)
        {
            var path = Path.Combine(root, folder);
            if (!Directory.Exists(path)) continue;
            foreach (var file in Directory.EnumerateFiles(path, "*.*", SearchOption.AllDirectories))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") || file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
                if (!(file.EndsWith(".cs", StringComparison.Ordinal) || file.EndsWith(".csproj", StringComparison.Ordinal) || file.EndsWith(".json", StringComparison.Ordinal))) continue;
                var t = File.GetLastWriteTimeUtc(file);
                if (t > newest) newest = t;
            }
        }
        return newest;
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)).Take(3).ToList();
        return lines.Count > 0 ? string.Join(" | ", lines) : "see dotnet build output";
    }
}
