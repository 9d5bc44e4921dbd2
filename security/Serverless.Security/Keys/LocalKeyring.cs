using System.Collections.Concurrent;
using System.Text.Json.Serialization;

namespace Serverless.Security.Keys;

/// <summary>Where the local keyring keeps its files and finds its master key.</summary>
public sealed record LocalKeyringOptions
{
    /// <summary>The data directory; the keyring is <c>keyring.bin</c> in it, the master key file <c>master.key</c>.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Environment variable holding the base64 32-byte master key; when set, no key file is used.</summary>
    public string MasterKeyEnvironmentVariable { get; init; } = "SERVERLESS_MASTER_KEY";

    public string KeyringFileName { get; init; } = "keyring.bin";
    public string MasterKeyFileName { get; init; } = "master.key";
}

/// <summary>
/// The embedded key vault: one file in the data directory, sealed as a whole with AES-256-GCM under
/// a master key (from an environment variable, or a 0600 key file made on first run). KEKs are
/// AES-256 keys that wrap with A256GCMKW; signing keys are ECDSA P-256 (ES256).
/// </summary>
/// <remarks>
/// The whole document is one AEAD ciphertext, so metadata (which versions are enabled) is as
/// tamper-evident as the key material. Writes go to a 0600 temporary file that is flushed to disk
/// and renamed over the old one, so a crash leaves the old or the new keyring, never a mix.
/// One process owns the file; the instance is thread-safe.
/// </remarks>
public sealed class LocalKeyring : IKeyVault, IDisposable
{
    private const int MasterKeyBytes = 32;
    private const int NonceBytes = 12; // AES-GCM 96-bit nonce (NIST SP 800-38D §8.2)
    private const int TagBytes = 16;
    private static readonly byte[] FileMagic = "SLKR\u0001"u8.ToArray();

    private readonly string _keyringPath;
    private readonly string _lockPath;
    private readonly byte[] _masterKey;
    private (DateTime WrittenAt, long Length) _loadedStamp;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, KeyEntry> _keys;
    private readonly ConcurrentDictionary<KeyId, ECDsa> _signers = new();

    private LocalKeyring(string keyringPath, byte[] masterKey, Dictionary<string, KeyEntry> keys, TimeProvider time)
    {
        _keyringPath = keyringPath;
        _lockPath = keyringPath + ".lock";
        _masterKey = masterKey;
        _keys = keys;
        _time = time;
    }

    /// <summary>
    /// Opens (or creates) the keyring. Refuses to start when the keyring or the master key file is
    /// readable or writable by anyone but the owner (mode wider than 0600).
    /// </summary>
    /// <exception cref="KeyVaultException">Permissions too wide, a malformed master key, or a keyring that does not decrypt under it.</exception>
    public static LocalKeyring Open(LocalKeyringOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(options.DataDirectory);
        var keyringPath = Path.Combine(options.DataDirectory, options.KeyringFileName);
        var masterKey = LoadOrCreateMasterKey(options);
        var keys = new Dictionary<string, KeyEntry>(StringComparer.Ordinal);
        if (File.Exists(keyringPath))
        {
            RequireOwnerOnly(keyringPath);
            keys = Unseal(File.ReadAllBytes(keyringPath), masterKey, keyringPath);
        }
        var keyring = new LocalKeyring(keyringPath, masterKey, keys, time ?? TimeProvider.System);
        keyring._loadedStamp = Stamp(keyringPath);
        return keyring;
    }

    public Task<KeyVersionInfo> CreateKeyAsync(string name, KeyKind kind, CancellationToken cancellationToken = default)
    {
        KeyNames.Validate(name);
        if (kind is not (KeyKind.Wrapping or KeyKind.Signing)) throw new ArgumentOutOfRangeException(nameof(kind));
        lock (_gate)
        {
            using var fileLock = AcquireFileLock();
            ReloadLocked();
            if (_keys.ContainsKey(name)) throw new KeyVaultException($"Key '{name}' already exists.");
            var entry = new KeyEntry { Kind = kind };
            var version = NewVersion(entry.Kind);
            entry.Versions.Add(version);
            _keys[name] = entry;
            PersistLocked(() => _keys.Remove(name));
            return Task.FromResult(Info(name, entry, version));
        }
    }

    public Task<KeyVersionInfo> RotateKeyAsync(string name, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            using var fileLock = AcquireFileLock();
            ReloadLocked();
            var entry = FindLocked(name);
            var version = NewVersion(entry.Kind);
            entry.Versions.Add(version);
            PersistLocked(() => entry.Versions.Remove(version));
            return Task.FromResult(Info(name, entry, version));
        }
    }

    public Task<IReadOnlyList<KeyVersionInfo>> ListVersionsAsync(string name, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            RefreshIfChangedLocked();
            var entry = FindLocked(name);
            var list = new List<KeyVersionInfo>(entry.Versions.Count);
            foreach (var v in entry.Versions) list.Add(Info(name, entry, v));
            return Task.FromResult<IReadOnlyList<KeyVersionInfo>>(list);
        }
    }

    public Task<KeyVersionInfo?> GetCurrentVersionAsync(string name, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            RefreshIfChangedLocked();
            if (!_keys.TryGetValue(name, out var entry)) return Task.FromResult<KeyVersionInfo?>(null);
            var current = CurrentLocked(entry);
            return Task.FromResult(current is null ? null : Info(name, entry, current));
        }
    }

    public Task DisableVersionAsync(KeyId id, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            using var fileLock = AcquireFileLock();
            ReloadLocked();
            var (_, version) = FindVersionLocked(id, requireEnabled: false);
            if (!version.Enabled) return Task.CompletedTask;
            version.Enabled = false;
            PersistLocked(() => version.Enabled = true);
            if (_signers.TryRemove(id, out var signer)) signer.Dispose();
            return Task.CompletedTask;
        }
    }

    public Task<WrappedKey> WrapKeyAsync(string name, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default)
    {
        if (dataKey.Length is 0 or > 1024) throw new ArgumentException("A data key is 1..1024 bytes.", nameof(dataKey));
        KeyId id;
        byte[] kek;
        lock (_gate)
        {
            RefreshIfChangedLocked();
            var entry = FindLocked(name);
            RequireKind(name, entry, KeyKind.Wrapping);
            var current = CurrentLocked(entry) ?? throw new KeyNotFoundException($"Key '{name}' has no enabled version.");
            id = new KeyId(name, current.Version);
            kek = current.Material;
        }
        var output = new byte[NonceBytes + dataKey.Length + TagBytes];
        var nonce = output.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using (var gcm = new AesGcm(kek, TagBytes))
        {
            gcm.Encrypt(nonce, dataKey.Span, output.AsSpan(NonceBytes, dataKey.Length), output.AsSpan(NonceBytes + dataKey.Length), WrapAad(id));
        }
        return Task.FromResult(new WrappedKey(id, KeyAlgorithms.A256GcmKw, output));
    }

    public Task<byte[]> UnwrapKeyAsync(WrappedKey wrapped, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        if (wrapped.Algorithm != KeyAlgorithms.A256GcmKw)
            throw new CryptographicException($"The local keyring unwraps only {KeyAlgorithms.A256GcmKw}, not '{wrapped.Algorithm}'.");
        if (wrapped.Ciphertext.Length <= NonceBytes + TagBytes)
            throw new CryptographicException("The wrapped key is too short.");
        byte[] kek;
        lock (_gate)
        {
            var (entry, version) = FindVersionLocked(wrapped.KeyId, requireEnabled: true);
            RequireKind(wrapped.KeyId.Name, entry, KeyKind.Wrapping);
            kek = version.Material;
        }
        var c = wrapped.Ciphertext;
        var plain = new byte[c.Length - NonceBytes - TagBytes];
        using var gcm = new AesGcm(kek, TagBytes);
        // Throws AuthenticationTagMismatchException (a CryptographicException) on any tampering.
        gcm.Decrypt(c.AsSpan(0, NonceBytes), c.AsSpan(NonceBytes, plain.Length), c.AsSpan(NonceBytes + plain.Length), plain, WrapAad(wrapped.KeyId));
        return Task.FromResult(plain);
    }

    public Task<KeySignature> SignAsync(string name, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default)
    {
        KeyNames.ValidateDigest(sha256Digest);
        KeyId id;
        lock (_gate)
        {
            RefreshIfChangedLocked();
            var entry = FindLocked(name);
            RequireKind(name, entry, KeyKind.Signing);
            var current = CurrentLocked(entry) ?? throw new KeyNotFoundException($"Key '{name}' has no enabled version.");
            id = new KeyId(name, current.Version);
        }
        var signer = Signer(id);
        var signature = signer.SignHash(sha256Digest.Span, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return Task.FromResult(new KeySignature(id, KeyAlgorithms.Es256, signature));
    }

    public Task<bool> VerifyAsync(KeySignature signature, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(signature);
        KeyNames.ValidateDigest(sha256Digest);
        if (signature.Algorithm != KeyAlgorithms.Es256) return Task.FromResult(false);
        lock (_gate)
        {
            RefreshIfChangedLocked();
            if (!_keys.TryGetValue(signature.KeyId.Name, out var entry) || entry.Kind != KeyKind.Signing) return Task.FromResult(false);
            var version = entry.Versions.Find(v => v.Version == signature.KeyId.Version);
            if (version is null || !version.Enabled) return Task.FromResult(false);
        }
        return Task.FromResult(Signer(signature.KeyId).VerifyHash(sha256Digest.Span, signature.Value, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    public Task<byte[]> GetPublicKeyAsync(KeyId id, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            var (entry, _) = FindVersionLocked(id, requireEnabled: false);
            RequireKind(id.Name, entry, KeyKind.Signing);
        }
        return Task.FromResult(Signer(id).ExportSubjectPublicKeyInfo());
    }

    public void Dispose()
    {
        foreach (var signer in _signers.Values) signer.Dispose();
        _signers.Clear();
        CryptographicOperations.ZeroMemory(_masterKey);
    }

    private ECDsa Signer(KeyId id) => _signers.GetOrAdd(id, key =>
    {
        byte[] material;
        lock (_gate) material = FindVersionLocked(key, requireEnabled: false).Version.Material;
        var ecdsa = ECDsa.Create();
        ecdsa.ImportPkcs8PrivateKey(material, out _);
        return ecdsa;
    });

    private static byte[] WrapAad(KeyId id) => Encoding.UTF8.GetBytes("serverless-keyring-wrap:" + id);

    private VersionEntry NewVersion(KeyKind kind)
    {
        byte[] material;
        if (kind == KeyKind.Wrapping)
        {
            material = RandomNumberGenerator.GetBytes(32); // AES-256 KEK
        }
        else
        {
            using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256); // FIPS 186-4 P-256
            material = ec.ExportPkcs8PrivateKey();
        }
        return new VersionEntry
        {
            Version = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            CreatedAt = _time.GetUtcNow(),
            Enabled = true,
            Material = material,
        };
    }

    private static KeyVersionInfo Info(string name, KeyEntry entry, VersionEntry v) =>
        new(new KeyId(name, v.Version), entry.Kind, entry.Kind == KeyKind.Wrapping ? KeyAlgorithms.A256GcmKw : KeyAlgorithms.Es256, v.Enabled, v.CreatedAt);

    private static VersionEntry? CurrentLocked(KeyEntry entry)
    {
        for (var i = entry.Versions.Count - 1; i >= 0; i--)
            if (entry.Versions[i].Enabled) return entry.Versions[i];
        return null;
    }

    private KeyEntry FindLocked(string name) =>
        _keys.TryGetValue(name, out var entry) ? entry : throw new KeyNotFoundException($"Key '{name}' does not exist.");

    private (KeyEntry Entry, VersionEntry Version) FindVersionLocked(KeyId id, bool requireEnabled)
    {
        // Versions made or disabled by another process sharing the data directory appear after a reload (one stat per call).
        RefreshIfChangedLocked();
        var entry = FindLocked(id.Name);
        var version = entry.Versions.Find(v => v.Version == id.Version)
            ?? throw new KeyNotFoundException($"Key version '{id}' does not exist.");
        if (requireEnabled && !version.Enabled) throw new KeyNotFoundException($"Key version '{id}' is disabled.");
        return (entry, version);
    }

    private static void RequireKind(string name, KeyEntry entry, KeyKind kind)
    {
        if (entry.Kind != kind) throw new KeyVaultException($"Key '{name}' is a {entry.Kind} key, not a {kind} key.");
    }

    private void PersistLocked(Action undo)
    {
        try
        {
            var sealedBytes = Seal(_keys, _masterKey);
            WriteOwnerOnlyAtomically(_keyringPath, sealedBytes);
            _loadedStamp = Stamp(_keyringPath);
        }
        catch
        {
            undo();
            throw;
        }
    }

    /// <summary>
    /// Several processes may share a data directory (hosts scaled out on one machine): every change
    /// re-reads the file under an exclusive lock on <c>keyring.bin.lock</c>, so no process overwrites
    /// a key another one created. Readers pick up changes when the file's stamp moves.
    /// </summary>
    private FileStream AcquireFileLock()
    {
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try { return new FileStream(_lockPath, options); }
            catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(10); }
        }
    }

    private void RefreshIfChangedLocked()
    {
        if (Stamp(_keyringPath) != _loadedStamp) ReloadLocked();
    }

    private void ReloadLocked()
    {
        var stamp = Stamp(_keyringPath);
        if (stamp == _loadedStamp || !File.Exists(_keyringPath)) return;
        RequireOwnerOnly(_keyringPath);
        var fresh = Unseal(File.ReadAllBytes(_keyringPath), _masterKey, _keyringPath);
        _keys.Clear();
        foreach (var (name, entry) in fresh) _keys[name] = entry;
        _loadedStamp = stamp;
    }

    private static (DateTime WrittenAt, long Length) Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : default;
    }

    private static byte[] Seal(Dictionary<string, KeyEntry> keys, byte[] masterKey)
    {
        var plain = JsonSerializer.SerializeToUtf8Bytes(new KeyringDocument { Format = 1, Keys = keys }, KeyringJson.Default.KeyringDocument);
        var output = new byte[FileMagic.Length + NonceBytes + plain.Length + TagBytes];
        FileMagic.CopyTo(output, 0);
        var nonce = output.AsSpan(FileMagic.Length, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(masterKey, TagBytes);
        gcm.Encrypt(nonce, plain, output.AsSpan(FileMagic.Length + NonceBytes, plain.Length), output.AsSpan(output.Length - TagBytes), FileMagic);
        CryptographicOperations.ZeroMemory(plain);
        return output;
    }

    private static Dictionary<string, KeyEntry> Unseal(byte[] file, byte[] masterKey, string path)
    {
        if (file.Length < FileMagic.Length + NonceBytes + TagBytes || !file.AsSpan(0, FileMagic.Length).SequenceEqual(FileMagic))
            throw new KeyVaultException($"'{path}' is not a keyring file (bad magic or too short).");
        var plain = new byte[file.Length - FileMagic.Length - NonceBytes - TagBytes];
        try
        {
            using var gcm = new AesGcm(masterKey, TagBytes);
            gcm.Decrypt(file.AsSpan(FileMagic.Length, NonceBytes), file.AsSpan(FileMagic.Length + NonceBytes, plain.Length), file.AsSpan(file.Length - TagBytes), plain, FileMagic);
        }
        catch (CryptographicException e)
        {
            throw new KeyVaultException($"'{path}' does not decrypt under the master key (wrong key or tampered file).", e);
        }
        var doc = JsonSerializer.Deserialize(plain, KeyringJson.Default.KeyringDocument);
        CryptographicOperations.ZeroMemory(plain);
        if (doc is null || doc.Format != 1 || doc.Keys is null) throw new KeyVaultException($"'{path}' has an unknown keyring format.");
        foreach (var (name, entry) in doc.Keys)
        {
            KeyNames.Validate(name);
            if (entry.Kind is not (KeyKind.Wrapping or KeyKind.Signing) || entry.Versions.Count == 0)
                throw new KeyVaultException($"Keyring entry '{name}' is malformed.");
            foreach (var v in entry.Versions)
            {
                if (string.IsNullOrEmpty(v.Version) || v.Material is null || (entry.Kind == KeyKind.Wrapping && v.Material.Length != 32))
                    throw new KeyVaultException($"Keyring entry '{name}' has a malformed version.");
            }
        }
        return new Dictionary<string, KeyEntry>(doc.Keys, StringComparer.Ordinal);
    }

    private static byte[] LoadOrCreateMasterKey(LocalKeyringOptions options)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(options.MasterKeyEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
            return DecodeMasterKey(fromEnvironment, $"environment variable {options.MasterKeyEnvironmentVariable}");

        var path = Path.Combine(options.DataDirectory, options.MasterKeyFileName);
        if (File.Exists(path))
        {
            RequireOwnerOnly(path);
            return DecodeMasterKey(File.ReadAllText(path), path);
        }
        var key = RandomNumberGenerator.GetBytes(MasterKeyBytes);
        WriteOwnerOnlyAtomically(path, Encoding.ASCII.GetBytes(Convert.ToBase64String(key) + "\n"));
        return key;
    }

    private static byte[] DecodeMasterKey(string base64, string source)
    {
        byte[] key;
        try { key = Convert.FromBase64String(base64.Trim()); }
        catch (FormatException e) { throw new KeyVaultException($"The master key in {source} is not base64.", e); }
        if (key.Length != MasterKeyBytes) throw new KeyVaultException($"The master key in {source} must be {MasterKeyBytes} bytes, got {key.Length}.");
        return key;
    }

    /// <summary>Throws when <paramref name="path"/> grants any permission beyond owner read/write (0600).</summary>
    internal static void RequireOwnerOnly(string path)
    {
        if (OperatingSystem.IsWindows()) return; // ACLs, not mode bits; out of scope for the embedded default
        var mode = File.GetUnixFileMode(path);
        const UnixFileMode allowed = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if ((mode & ~allowed) != 0)
            throw new KeyVaultException(
                $"Refusing to start: '{path}' has mode {Convert.ToString((int)mode, 8)}, wider than 0600. Run: chmod 600 '{path}'.");
    }

    internal static void WriteOwnerOnlyAtomically(string path, byte[] content)
    {
        var temp = path + ".tmp";
        File.Delete(temp);
        var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, fileOptions))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    internal sealed class KeyEntry
    {
        public KeyKind Kind { get; set; }
        public List<VersionEntry> Versions { get; set; } = [];
    }

    internal sealed class VersionEntry
    {
        public string Version { get; set; } = "";
        public DateTimeOffset CreatedAt { get; set; }
        public bool Enabled { get; set; }
        public byte[] Material { get; set; } = [];
    }

    internal sealed class KeyringDocument
    {
        public int Format { get; set; }
        public Dictionary<string, KeyEntry>? Keys { get; set; }
    }
}

[JsonSerializable(typeof(LocalKeyring.KeyringDocument))]
internal sealed partial class KeyringJson : JsonSerializerContext;
