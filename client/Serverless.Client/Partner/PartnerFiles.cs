using Serverless.Client.Agent;

namespace Serverless.Client.Partner;

/// <summary>
/// The partner's key directory (<c>--keys DIR</c>): <c>package.json</c> (the model version's plan and
/// preprocessing statistics, from the server), <c>partner.keys</c> (0600, sealed under the directory's keyring, <c>keyring.bin</c> and
/// <c>master.key</c> or <see cref="MasterKeyVariable"/>: the secret key with the public bundle; never leaves this directory),
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

    /// <summary>
    /// The environment variable that may hold the master key of the keys directory's keyring instead of its <c>master.key</c>
    /// (so a copy of the directory without the variable opens nothing).
    /// </summary>
    public const string MasterKeyVariable = "SERVERLESS_PARTNER_MASTER_KEY";

    private const string SealedObjectName = "partner-keys/" + SecretKey;

    /// <summary>Seals the exported key pair (AES-256-GCM envelope under the directory's own keyring, as the agent seals its state) and writes it 0600.</summary>
    public static async Task WriteSecretKeyAsync(DirectoryInfo dir, byte[] exported, CancellationToken cancellationToken = default)
    {
        using var keys = await AgentKeys.OpenAsync(dir.FullName, cancellationToken, MasterKeyVariable);
        using var sealedBytes = new MemoryStream();
        await keys.Encryptor.EncryptAsync(new MemoryStream(exported, writable: false), sealedBytes, SealedObjectName, cancellationToken);
        WriteAtomically(PathIn(dir, SecretKey), sealedBytes.ToArray(), secret: true);
    }

    /// <summary>Reads and unseals the secret key, refusing a file others can read (as ssh does).</summary>
    /// <exception cref="CryptographicException">the file was changed, or sealed under another directory's keyring.</exception>
    public static async Task<byte[]> ReadSecretKeyAsync(DirectoryInfo dir, CancellationToken cancellationToken = default)
    {
        var path = PathIn(dir, SecretKey);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist (run 'partner keygen' first)");
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            throw new UnauthorizedAccessException($"refusing to read {path}: its mode is wider than 0600 (run: chmod 600 {path})");
        using var keys = await AgentKeys.OpenAsync(dir.FullName, cancellationToken, MasterKeyVariable);
        await using var file = File.OpenRead(path);
        using var plain = new MemoryStream();
        try
        {
            await keys.Encryptor.DecryptAsync(file, plain, SealedObjectName, cancellationToken);
        }
        catch (Exception e) when (e is CryptographicException or InvalidDataException)
        {
            throw new CryptographicException($"{path} does not unseal under this directory's keyring ({e.Message}); a key pair from an older version is unsealed: run 'partner keygen --force' and register the new keys", e);
        }
        var bytes = plain.ToArray();
        CryptographicOperations.ZeroMemory(plain.GetBuffer());
        return bytes;
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
