namespace Serverless.Client.Partner;

/// <summary>
/// The partner's key directory (<c>--keys DIR</c>): <c>package.json</c> (the model version's plan and
/// preprocessing statistics, from the server), <c>partner.keys</c> (0600: the secret key with the public bundle; never leaves this directory),
/// <c>evaluation-keys.bin</c> (the public bundle the server gets). Files are written atomically.
/// </summary>
internal static class PartnerFiles
{
    public const string Package = "package.json";
    public const string SecretKey = "partner.keys";
    public const string EvaluationKeys = "evaluation-keys.bin";

    public static string PathIn(DirectoryInfo dir, string name) => System.IO.Path.Combine(dir.FullName, name);

    public static byte[] ReadRequired(DirectoryInfo dir, string name, string hint)
    {
        var path = PathIn(dir, name);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist ({hint})");
        return File.ReadAllBytes(path);
    }

    /// <summary>Reads the secret key, refusing a file others can read (as ssh does).</summary>
    public static byte[] ReadSecretKey(DirectoryInfo dir)
    {
        var path = PathIn(dir, SecretKey);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist (run 'partner keygen' first)");
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            throw new UnauthorizedAccessException($"refusing to read {path}: its mode is wider than 0600 (run: chmod 600 {path})");
        return File.ReadAllBytes(path);
    }

    /// <summary>Writes to a temporary file (0600 when <paramref name="secret"/>), fsyncs, renames over the target.</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> content, bool secret = false)
    {
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var tmp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (secret && !OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var stream = new FileStream(tmp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
