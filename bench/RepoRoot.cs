namespace Serverless.Bench;

/// <summary>Finds the checkout the bench runs from, for the peers' scripts and the npm tools in tools/.</summary>
internal static class RepoRoot
{
    /// <summary>The directory holding Serverless.sln above the current directory, else above the binary; null if neither.</summary>
    public static string? Find()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serverless.sln"))) return dir.FullName;
        return null;
    }
}
