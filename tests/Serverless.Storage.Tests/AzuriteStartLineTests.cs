using System.Text.RegularExpressions;

namespace Serverless.Storage.Tests;

/// <summary>
/// Azurite 3.x sends usage data to an outside host unless it is started with
/// <c>--disableTelemetry</c>, and no server we start may reach outside the machine. Every place in
/// the repository that starts Azurite (scripts, benchmarks, docs, code) must pass the flag.
/// </summary>
public sealed partial class AzuriteStartLineTests
{
    // "azurite", "azurite-blob" or "azurite-queue" used as a command: followed by an option.
    [GeneratedRegex(@"\bazurite(?:-blob|-queue|-table)?(?:\.cmd)?[""']?\s+--[A-Za-z]", RegexOptions.IgnoreCase)]
    private static partial Regex StartCommand();

    private static readonly string[] ScannedExtensions = [".sh", ".md", ".cs", ".json", ".yml", ".yaml", ".ps1", ".mjs", ".js", ".bicep"];

    /// <summary>The logical lines (shell continuations joined) that start Azurite and lack the flag.</summary>
    internal static IEnumerable<(int Line, string Text)> StartLinesWithoutTelemetryOff(string content)
    {
        var lines = content.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var start = i;
            var logical = lines[i].TrimEnd('\r');
            while (logical.EndsWith('\\') && i + 1 < lines.Length)
                logical = logical[..^1] + " " + lines[++i].TrimEnd('\r');
            if (StartCommand().IsMatch(logical) && !logical.Contains("--disableTelemetry", StringComparison.Ordinal))
                yield return (start + 1, logical.Trim());
        }
    }

    [Fact]
    public void Detector_flags_a_start_line_without_the_flag_across_continuations()
    {
        const string script = "#!/bin/sh\n" +
            // Split so that this file is not itself a start line without the flag.
            "npx azu" + "rite --silent --location /tmp/a \\\n  --blobHost 127.0.0.1\n" +
            "tools/node_modules/.bin/azurite --silent --disableTelemetry --location /tmp/b\n" +
            "azurite-queue \\\n  --queueHost 127.0.0.1 \\\n  --disableTelemetry\n" +
            "echo 'azurite is the storage emulator'\n";

        var flagged = StartLinesWithoutTelemetryOff(script).ToList();

        var only = Assert.Single(flagged);
        Assert.Equal(2, only.Line);
        Assert.Contains("--blobHost", only.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_azurite_start_line_in_the_repository_disables_telemetry()
    {
        var root = FindRepositoryRoot();
        var offenders = new List<string>();
        var scanned = 0;
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(root, file);
            if (IsExcluded(relative) || !ScannedExtensions.Contains(Path.GetExtension(file), StringComparer.OrdinalIgnoreCase))
                continue;
            scanned++;
            foreach (var (line, text) in StartLinesWithoutTelemetryOff(File.ReadAllText(file)))
                offenders.Add($"{relative}:{line}: {text}");
        }

        Assert.True(scanned > 50, $"only {scanned} files scanned under {root}: is this the repository?");
        Assert.True(offenders.Count == 0, "Azurite started without --disableTelemetry:\n" + string.Join('\n', offenders));
        // The test command itself must be among the scanned start lines, so the scan really sees it.
        Assert.Contains("--disableTelemetry", File.ReadAllText(Path.Combine(root, "scripts", "test.sh")), StringComparison.Ordinal);
    }

    private static bool IsExcluded(string relative)
    {
        foreach (var part in relative.Split(Path.DirectorySeparatorChar))
            if (part is "node_modules" or "bin" or "obj" or ".git")
                return true;
        return false;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serverless.sln")))
                return dir.FullName;
        throw new InvalidOperationException("Serverless.sln not found above " + AppContext.BaseDirectory);
    }
}
