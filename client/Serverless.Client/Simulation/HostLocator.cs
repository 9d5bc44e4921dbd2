using System.Diagnostics;

namespace Serverless.Client.Simulation;

/// <summary>
/// Finds the built function host (Serverless.Functions.dll): an explicit path, <c>SERVERLESS_FUNCTIONS_DLL</c>,
/// next to this assembly (test and publish layouts), or the repository's Release build, which is built
/// first when it is missing or older than the sources (a clean clone needs nothing else).
/// </summary>
internal static class HostLocator
{
    public const string DllName = "Serverless.Functions.dll";
    private static readonly string[] SourceFolders = ["functions", "federation", "runtime", "security", "privacy", "model"];

    public static string Find(string? explicitPath, TextWriter log)
    {
        if (explicitPath is not null)
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new FileNotFoundException($"no function host at {explicitPath}");
        if (Environment.GetEnvironmentVariable("SERVERLESS_FUNCTIONS_DLL") is { Length: > 0 } fromEnv)
            return File.Exists(fromEnv) ? fromEnv : throw new FileNotFoundException($"SERVERLESS_FUNCTIONS_DLL names {fromEnv}, which does not exist");
        var besideUs = Path.Combine(AppContext.BaseDirectory, DllName);
        if (File.Exists(besideUs)) return besideUs;

        var root = RepositoryRoot() ?? throw new FileNotFoundException(
            $"cannot find {DllName}: run from the repository (dotnet run --project client/Serverless.Client -- simulate), pass --host-dll, or set SERVERLESS_FUNCTIONS_DLL");
        var project = Path.Combine(root, "functions", "Serverless.Functions.Legacy", "Serverless.Functions.Legacy.csproj");
        var dll = Path.Combine(root, "functions", "Serverless.Functions.Legacy", "bin", "Release", "net10.0", DllName);
        if (!File.Exists(dll) || File.GetLastWriteTimeUtc(dll) < NewestSource(root))
        {
            log.WriteLine($"building the function host ({Path.GetRelativePath(root, project)}, Release) ...");
            var build = Process.Start(new ProcessStartInfo("dotnet", ["build", project, "-c", "Release", "--nologo", "-v", "q"])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root,
            }) ?? throw new InvalidOperationException("could not start dotnet build");
            var output = build.StandardOutput.ReadToEndAsync();
            var error = build.StandardError.ReadToEndAsync();
            build.WaitForExit();
            if (build.ExitCode != 0 || !File.Exists(dll))
                throw new InvalidOperationException($"building the function host failed: {Tail(output.Result + error.Result)}");
        }
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
