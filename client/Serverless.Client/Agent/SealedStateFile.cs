using Serverless.Security.Envelope;
using Serverless.Security.Keys;

namespace Serverless.Client.Agent;

/// <summary>
/// The agent's own key material: a local keyring in the agent directory (<c>keyring.bin</c> sealed by
/// <c>master.key</c>, both 0600, or the master key from <c>SERVERLESS_AGENT_MASTER_KEY</c>), holding the
/// key-encryption key that protects the agent's persisted round state. Separate from the host's keyring:
/// an agent runs at the hospital, the host in the cloud.
/// </summary>
internal sealed class AgentKeys : IDisposable
{
    /// <summary>KEK wrapping each state file's data key (A256GCMKW in the local keyring).</summary>
    public const string StateKeyName = "agent-state-kek";

    /// <summary>The environment variable an operator may use for the master key instead of master.key.</summary>
    public const string MasterKeyVariable = "SERVERLESS_AGENT_MASTER_KEY";

    private readonly LocalKeyring _keyring;

    private AgentKeys(LocalKeyring keyring, EnvelopeEncryptor encryptor)
    {
        _keyring = keyring;
        Encryptor = encryptor;
    }

    /// <summary>AES-256-GCM envelopes under <see cref="StateKeyName"/>.</summary>
    public EnvelopeEncryptor Encryptor { get; }

    /// <summary>Opens (creating on first use) the keyring in <paramref name="agentDirectory"/>.</summary>
    /// <param name="agentDirectory">The agent directory.</param>
    /// <param name="cancellationToken">Cancellation.</param>
    /// <param name="masterKeyVariable">The environment variable that may hold the master key instead of master.key (tests name one that is never set).</param>
    /// <exception cref="UnauthorizedAccessException">the key files are readable by others (the keyring refuses to open).</exception>
    public static async Task<AgentKeys> OpenAsync(string agentDirectory, CancellationToken cancellationToken = default, string masterKeyVariable = MasterKeyVariable)
    {
        Directory.CreateDirectory(agentDirectory);
        var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = agentDirectory, MasterKeyEnvironmentVariable = masterKeyVariable });
        try
        {
            if (await keyring.GetCurrentVersionAsync(StateKeyName, cancellationToken) is null)
                await keyring.CreateKeyAsync(StateKeyName, KeyKind.Wrapping, cancellationToken);
            return new AgentKeys(keyring, new EnvelopeEncryptor(keyring, new EnvelopeOptions { KeyName = StateKeyName }));
        }
        catch
        {
            keyring.Dispose();
            throw;
        }
    }

    public void Dispose() => _keyring.Dispose();
}

/// <summary>
/// A JSON document persisted encrypted at rest: the envelope (fresh AES-256-GCM data key wrapped by the
/// agent's KEK, the file name bound as the object name) written to a 0600 temp file, fsynced and renamed
/// over the old one, so a crash leaves either the previous state or the new one, never a torn file.
/// </summary>
internal sealed class SealedStateFile<T>(string path, EnvelopeEncryptor encryptor) where T : class
{
    private readonly string _objectName = "agent-state/" + System.IO.Path.GetFileName(path);

    public string Path { get; } = System.IO.Path.GetFullPath(path);

    /// <summary>Seals and writes <paramref name="value"/>; on return it is on disk.</summary>
    public async Task SaveAsync(T value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        var plain = JsonSerializer.SerializeToUtf8Bytes(value, AgentJson.Options);
        try
        {
            using var source = new MemoryStream(plain, writable: false);
            using var sealedBytes = new MemoryStream();
            await encryptor.EncryptAsync(source, sealedBytes, _objectName, cancellationToken);
            WriteAtomically(Path, sealedBytes.ToArray());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>The stored value, or null when there is none.</summary>
    /// <exception cref="CryptographicException">the file was modified, truncated, renamed from another state file, or sealed by another agent's key.</exception>
    /// <exception cref="InvalidDataException">the decrypted document is not a valid state.</exception>
    public async Task<T?> LoadAsync(CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Path)) return null;
        await using var file = File.OpenRead(Path);
        using var plain = new MemoryStream();
        await encryptor.DecryptAsync(file, plain, _objectName, cancellationToken);
        var bytes = plain.GetBuffer().AsSpan(0, (int)plain.Length);
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, AgentJson.Options) ?? throw new InvalidDataException($"{Path}: empty state");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{Path}: the decrypted state is not valid: {e.Message}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>Removes the state (after a round is finished for good).</summary>
    public void Delete()
    {
        if (File.Exists(Path)) File.Delete(Path);
    }

    internal static void WriteAtomically(string path, byte[] content)
    {
        var temp = path + ".tmp-" + Environment.ProcessId;
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}

/// <summary>JSON settings of everything the agent persists or sends.</summary>
internal static class AgentJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };
}
