using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;

namespace Serverless.Host.Http;

/// <summary>How an HTTP trigger is protected (the binding's authLevel).</summary>
internal enum AuthLevel
{
    Anonymous,
    Function,
    Admin,
}

/// <summary>
/// The host's keys, with the Functions host's rules: an authLevel "function" trigger accepts one of its
/// own function keys, a host key or the master key; "admin" only the master key. A caller passes the key
/// in the <c>code</c> query parameter or the <c>x-functions-key</c> header. Comparison is constant-time.
/// </summary>
public sealed class FunctionKeys
{
    private readonly byte[] _master;
    private readonly byte[][] _host;
    private readonly Dictionary<string, byte[][]> _functions;

    public FunctionKeys(string masterKey, IReadOnlyCollection<string> hostKeys, IReadOnlyDictionary<string, IReadOnlyCollection<string>> functionKeys)
    {
        ArgumentException.ThrowIfNullOrEmpty(masterKey);
        _master = Encoding.UTF8.GetBytes(masterKey);
        _host = hostKeys.Where(k => k.Length > 0).Select(Encoding.UTF8.GetBytes).ToArray();
        _functions = new Dictionary<string, byte[][]>(StringComparer.OrdinalIgnoreCase);
        foreach ((string function, IReadOnlyCollection<string> keys) in functionKeys)
        {
            _functions[function] = keys.Where(k => k.Length > 0).Select(Encoding.UTF8.GetBytes).ToArray();
        }
    }

    /// <summary>A key derived from the master key (HMAC-SHA256 over <paramref name="name"/>): a system key that is stable across restarts.</summary>
    internal byte[] DeriveKey(string name) => HMACSHA256.HashData(_master, Encoding.UTF8.GetBytes(name));

    /// <summary>A fresh master key and default host key, 32 random bytes each (base64url).</summary>
    public static FunctionKeys Generate() => new(NewKey(), [NewKey()], new Dictionary<string, IReadOnlyCollection<string>>());

    /// <summary>
    /// Reads the keys file, or writes a new one (mode 0600) when it does not exist yet, so keys survive restarts.
    /// Format: <c>{"masterKey": "...", "hostKeys": {"default": "..."}, "functionKeys": {"Fn": {"default": "..."}}}</c>.
    /// </summary>
    public static FunctionKeys LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var file = new KeysFile { MasterKey = NewKey(), HostKeys = new() { ["default"] = NewKey() } };
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            using (var stream = new FileStream(path, options))
            {
                JsonSerializer.Serialize(stream, file, KeysJson.Default.KeysFile);
            }
        }
        KeysFile? read;
        try
        {
            read = JsonSerializer.Deserialize(File.ReadAllText(path), KeysJson.Default.KeysFile);
        }
        catch (JsonException e)
        {
            throw new HostStartException($"{path}: not a keys file ({e.Message})");
        }
        if (read?.MasterKey is not { Length: >= 16 } master)
        {
            throw new HostStartException($"{path}: masterKey is missing or shorter than 16 characters");
        }
        return new FunctionKeys(
            master,
            read.HostKeys?.Values.ToArray() ?? [],
            read.FunctionKeys?.ToDictionary(f => f.Key, f => (IReadOnlyCollection<string>)f.Value.Values.ToArray()) ?? []);
    }

    internal bool Allows(AuthLevel level, string functionName, string? presented)
    {
        if (level == AuthLevel.Anonymous)
        {
            return true;
        }
        if (string.IsNullOrEmpty(presented))
        {
            return false;
        }
        byte[] key = Encoding.UTF8.GetBytes(presented);
        bool allowed = CryptographicOperations.FixedTimeEquals(key, _master);
        if (level == AuthLevel.Function)
        {
            // Every candidate is compared, so the time taken does not say which kind of key matched.
            allowed |= AnyEquals(_host, key);
            allowed |= _functions.TryGetValue(functionName, out byte[][]? own) && AnyEquals(own, key);
        }
        return allowed;
    }

    private static bool AnyEquals(byte[][] candidates, byte[] key)
    {
        bool any = false;
        foreach (byte[] candidate in candidates)
        {
            any |= CryptographicOperations.FixedTimeEquals(candidate, key);
        }
        return any;
    }

    private static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    internal sealed class KeysFile
    {
        public string? MasterKey { get; set; }
        public Dictionary<string, string>? HostKeys { get; set; }
        public Dictionary<string, Dictionary<string, string>>? FunctionKeys { get; set; }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(FunctionKeys.KeysFile))]
internal sealed partial class KeysJson : JsonSerializerContext;
