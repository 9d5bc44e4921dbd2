using System.Buffers.Text;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Serverless.Security.Keys;

/// <summary>Pipeline options (transport, retries, diagnostics) for <see cref="AzureKeyVaultClient"/>.</summary>
public sealed class AzureKeyVaultClientOptions : ClientOptions
{
    /// <summary>Key Vault REST api-version (7.4 and 7.5 have the same shape for the calls used here).</summary>
    public string ApiVersion { get; set; } = "7.4";

    /// <summary>How long the current version of a key is cached before wrap/sign look it up again.</summary>
    public TimeSpan CurrentVersionCacheDuration { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>RSA modulus for new wrapping keys (Key Vault: 2048, 3072 or 4096).</summary>
    public int RsaKeySize { get; set; } = 3072;
}

/// <summary>
/// <see cref="IKeyVault"/> over the Azure Key Vault keys REST API, through Azure.Core's
/// <see cref="HttpPipeline"/> (retries, logging) with bearer tokens from a <see cref="TokenCredential"/>
/// (Azure.Identity, e.g. DefaultAzureCredential or a managed identity).
/// Wrapping keys are RSA keys used with RSA-OAEP-256; signing keys are EC P-256 keys used with ES256.
/// </summary>
/// <remarks>
/// Calls (https://learn.microsoft.com/rest/api/keyvault/keys): POST keys/{name}/create,
/// POST keys/{name}/rotate, GET keys/{name}/versions, GET and PATCH keys/{name}/{version},
/// POST keys/{name}/{version}/wrapkey | unwrapkey | sign | verify, each with ?api-version=.
/// </remarks>
public sealed class AzureKeyVaultClient : IKeyVault
{
    /// <summary>The OAuth scope Key Vault accepts in the public cloud.</summary>
    public const string Scope = "https://vault.azure.net/.default";

    private readonly Uri _vaultUri;
    private readonly HttpPipeline _pipeline;
    private readonly AzureKeyVaultClientOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _cacheGate = new();
    private readonly Dictionary<string, (KeyVersionInfo Info, DateTimeOffset Until)> _current = new(StringComparer.Ordinal);

    public AzureKeyVaultClient(Uri vaultUri, TokenCredential credential, AzureKeyVaultClientOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(vaultUri);
        ArgumentNullException.ThrowIfNull(credential);
        if (vaultUri.Scheme != Uri.UriSchemeHttps) throw new ArgumentException("The vault URI must be https.", nameof(vaultUri));
        _vaultUri = vaultUri;
        _options = options ?? new AzureKeyVaultClientOptions();
        _time = time ?? TimeProvider.System;
        _pipeline = HttpPipelineBuilder.Build(_options, [], [new BearerTokenAuthenticationPolicy(credential, Scope)], new ResponseClassifier());
    }

    public async Task<KeyVersionInfo> CreateKeyAsync(string name, KeyKind kind, CancellationToken cancellationToken = default)
    {
        KeyNames.Validate(name);
        // Key Vault's create adds a version to an existing name; the interface promises "fails if it exists".
        using (var probe = await SendAsync(RequestMethod.Get, ["keys", name], null, cancellationToken, allow404: true))
        {
            if (probe.Status != 404) throw new KeyVaultException($"Key '{name}' already exists.");
        }
        var body = Json(w =>
        {
            if (kind == KeyKind.Wrapping)
            {
                w.WriteString("kty", "RSA");
                w.WriteNumber("key_size", _options.RsaKeySize);
                WriteArray(w, "key_ops", "wrapKey", "unwrapKey");
            }
            else if (kind == KeyKind.Signing)
            {
                w.WriteString("kty", "EC");
                w.WriteString("crv", "P-256");
                WriteArray(w, "key_ops", "sign", "verify");
            }
            else throw new ArgumentOutOfRangeException(nameof(kind));
        });
        using var response = await SendAsync(RequestMethod.Post, ["keys", name, "create"], body, cancellationToken);
        return Remember(ParseBundle(response));
    }

    public async Task<KeyVersionInfo> RotateKeyAsync(string name, CancellationToken cancellationToken = default)
    {
        KeyNames.Validate(name);
        using var response = await SendAsync(RequestMethod.Post, ["keys", name, "rotate"], null, cancellationToken);
        return Remember(ParseBundle(response));
    }

    public async Task<IReadOnlyList<KeyVersionInfo>> ListVersionsAsync(string name, CancellationToken cancellationToken = default)
    {
        KeyNames.Validate(name);
        KeyKind kind;
        using (var latest = await SendAsync(RequestMethod.Get, ["keys", name], null, cancellationToken))
            kind = ParseBundle(latest).Kind;

        var versions = new List<KeyVersionInfo>();
        Uri? next = null;
        do
        {
            using var response = next is null
                ? await SendAsync(RequestMethod.Get, ["keys", name, "versions"], null, cancellationToken)
                : await SendAsync(RequestMethod.Get, next, null, cancellationToken);
            using var doc = JsonDocument.Parse(response.Content.ToMemory());
            foreach (var item in doc.RootElement.GetProperty("value").EnumerateArray())
            {
                var (id, enabled, created) = ParseIdAndAttributes(item);
                versions.Add(new KeyVersionInfo(id, kind, AlgorithmFor(kind), enabled, created));
            }
            next = doc.RootElement.TryGetProperty("nextLink", out var link) && link.ValueKind == JsonValueKind.String
                ? new Uri(link.GetString()!) : null;
            if (next is not null && next.Host != _vaultUri.Host) throw new KeyVaultException("nextLink points outside the vault.");
        } while (next is not null);
        // Oldest first; Key Vault reports creation in whole seconds, so keep the service's order for ties.
        return versions.Select((v, i) => (v, i)).OrderBy(p => p.v.CreatedAt).ThenBy(p => p.i).Select(p => p.v).ToList();
    }

    public async Task<KeyVersionInfo?> GetCurrentVersionAsync(string name, CancellationToken cancellationToken = default)
    {
        lock (_cacheGate)
        {
            if (_current.TryGetValue(name, out var cached) && cached.Until > _time.GetUtcNow()) return cached.Info;
        }
        IReadOnlyList<KeyVersionInfo> versions;
        try { versions = await ListVersionsAsync(name, cancellationToken); }
        catch (KeyNotFoundException) { return null; }
        var current = versions.LastOrDefault(v => v.Enabled);
        return current is null ? null : Remember(current);
    }

    public async Task DisableVersionAsync(KeyId id, CancellationToken cancellationToken = default)
    {
        ValidateId(id);
        var body = Json(w =>
        {
            w.WriteStartObject("attributes");
            w.WriteBoolean("enabled", false);
            w.WriteEndObject();
        });
        using var response = await SendAsync(RequestMethod.Patch, ["keys", id.Name, id.Version], body, cancellationToken);
        lock (_cacheGate) _current.Remove(id.Name);
    }

    public async Task<WrappedKey> WrapKeyAsync(string name, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default)
    {
        if (dataKey.Length is 0 or > 256) throw new ArgumentException("A data key is 1..256 bytes.", nameof(dataKey));
        var current = await GetCurrentVersionAsync(name, cancellationToken) ?? throw new KeyNotFoundException($"Key '{name}' has no enabled version.");
        var (kid, value) = await KeyOperationAsync(current.Id, "wrapkey", KeyAlgorithms.RsaOaep256, dataKey, cancellationToken);
        return new WrappedKey(kid, KeyAlgorithms.RsaOaep256, value);
    }

    public async Task<byte[]> UnwrapKeyAsync(WrappedKey wrapped, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        ValidateId(wrapped.KeyId);
        if (wrapped.Algorithm != KeyAlgorithms.RsaOaep256)
            throw new CryptographicException($"This vault unwraps only {KeyAlgorithms.RsaOaep256}, not '{wrapped.Algorithm}'.");
        try
        {
            return (await KeyOperationAsync(wrapped.KeyId, "unwrapkey", wrapped.Algorithm, wrapped.Ciphertext, cancellationToken)).Value;
        }
        catch (KeyVaultException e) when (e.Status == 400)
        {
            throw new CryptographicException($"Key Vault could not unwrap with '{wrapped.KeyId}': {e.Message}", e);
        }
    }

    public async Task<KeySignature> SignAsync(string name, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default)
    {
        KeyNames.ValidateDigest(sha256Digest);
        var current = await GetCurrentVersionAsync(name, cancellationToken) ?? throw new KeyNotFoundException($"Key '{name}' has no enabled version.");
        var (kid, value) = await KeyOperationAsync(current.Id, "sign", KeyAlgorithms.Es256, sha256Digest, cancellationToken);
        return new KeySignature(kid, KeyAlgorithms.Es256, value);
    }

    public async Task<bool> VerifyAsync(KeySignature signature, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(signature);
        KeyNames.ValidateDigest(sha256Digest);
        ValidateId(signature.KeyId);
        var body = Json(w =>
        {
            w.WriteString("alg", signature.Algorithm);
            w.WriteString("digest", Base64Url.EncodeToString(sha256Digest.Span));
            w.WriteString("value", Base64Url.EncodeToString(signature.Value));
        });
        try
        {
            using var response = await SendAsync(RequestMethod.Post, ["keys", signature.KeyId.Name, signature.KeyId.Version, "verify"], body, cancellationToken);
            using var doc = JsonDocument.Parse(response.Content.ToMemory());
            return doc.RootElement.TryGetProperty("value", out var value) && value.ValueKind == JsonValueKind.True;
        }
        catch (KeyNotFoundException) { return false; }
        catch (KeyVaultException e) when (e.Status is 400 or 403) { return false; }
    }

    public async Task<byte[]> GetPublicKeyAsync(KeyId id, CancellationToken cancellationToken = default)
    {
        ValidateId(id);
        using var response = await SendAsync(RequestMethod.Get, ["keys", id.Name, id.Version], null, cancellationToken);
        using var doc = JsonDocument.Parse(response.Content.ToMemory());
        var key = doc.RootElement.GetProperty("key");
        var kty = key.GetProperty("kty").GetString();
        if (kty is "EC" or "EC-HSM")
        {
            if (key.GetProperty("crv").GetString() != "P-256") throw new KeyVaultException($"Key '{id}' is not on P-256.");
            using var ec = ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = Base64Url.DecodeFromChars(key.GetProperty("x").GetString()), Y = Base64Url.DecodeFromChars(key.GetProperty("y").GetString()) },
            });
            return ec.ExportSubjectPublicKeyInfo();
        }
        if (kty is "RSA" or "RSA-HSM")
        {
            using var rsa = RSA.Create(new RSAParameters
            {
                Modulus = Base64Url.DecodeFromChars(key.GetProperty("n").GetString()),
                Exponent = Base64Url.DecodeFromChars(key.GetProperty("e").GetString()),
            });
            return rsa.ExportSubjectPublicKeyInfo();
        }
        throw new KeyVaultException($"Key '{id}' has unsupported type '{kty}'.");
    }

    private KeyVersionInfo Remember(KeyVersionInfo info)
    {
        if (info.Enabled)
        {
            lock (_cacheGate) _current[info.Id.Name] = (info, _time.GetUtcNow() + _options.CurrentVersionCacheDuration);
        }
        return info;
    }

    private Task<RestResult> SendAsync(RequestMethod method, string[] segments, byte[]? body, CancellationToken cancellationToken, bool allow404 = false)
    {
        var path = _vaultUri.GetLeftPart(UriPartial.Authority) + "/" + string.Join('/', segments.Select(Uri.EscapeDataString));
        var uri = new RequestUriBuilder();
        uri.Reset(new Uri(path));
        uri.AppendQuery("api-version", _options.ApiVersion, escapeValue: true);
        return SendAsync(method, uri, body, cancellationToken, allow404);
    }

    private Task<RestResult> SendAsync(RequestMethod method, Uri absolute, byte[]? body, CancellationToken cancellationToken)
    {
        var uri = new RequestUriBuilder();
        uri.Reset(absolute);
        return SendAsync(method, uri, body, cancellationToken, allow404: false);
    }

    private async Task<RestResult> SendAsync(RequestMethod method, RequestUriBuilder uri, byte[]? body, CancellationToken cancellationToken, bool allow404)
    {
        using var message = _pipeline.CreateMessage();
        var request = message.Request;
        request.Method = method;
        request.Uri = uri;
        request.Headers.Add(HttpHeader.Common.JsonAccept);
        if (body is not null)
        {
            request.Headers.Add(HttpHeader.Common.JsonContentType);
            request.Content = RequestContent.Create(body);
        }
        await _pipeline.SendAsync(message, cancellationToken);
        using var response = message.Response; // buffered by the pipeline (HttpMessage.BufferResponse)
        var result = new RestResult(response.Status, response.Content);
        if (response.Status is >= 200 and < 300 || (allow404 && response.Status == 404)) return result;

        {
            var detail = "";
            try
            {
                using var doc = JsonDocument.Parse(response.Content.ToMemory());
                if (doc.RootElement.TryGetProperty("error", out var error))
                    detail = $"{error.GetProperty("code").GetString()}: {error.GetProperty("message").GetString()}";
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException) { }
            var text = $"Key Vault {method} {request.Uri.Path} failed ({response.Status}) {detail}".TrimEnd();
            if (response.Status == 404) throw new KeyNotFoundException(text);
            throw new KeyVaultException(text, status: response.Status);
        }
    }

    // wrapkey, unwrapkey and sign share one shape: POST keys/{name}/{version}/{operation} with {"alg", "value"},
    // answered with {"kid", "value"} (Key Vault REST API 7.4, key operations).
    private async Task<(KeyId KeyId, byte[] Value)> KeyOperationAsync(KeyId key, string operation, string algorithm, ReadOnlyMemory<byte> value,
        CancellationToken cancellationToken)
    {
        var body = Json(w =>
        {
            w.WriteString("alg", algorithm);
            w.WriteString("value", Base64Url.EncodeToString(value.Span));
        });
        using var response = await SendAsync(RequestMethod.Post, ["keys", key.Name, key.Version, operation], body, cancellationToken);
        return ParseKidAndValue(response);
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteArray(Utf8JsonWriter writer, string name, params string[] values)
    {
        writer.WriteStartArray(name);
        foreach (var value in values) writer.WriteStringValue(value);
        writer.WriteEndArray();
    }

    private static KeyVersionInfo ParseBundle(RestResult response)
    {
        using var doc = JsonDocument.Parse(response.Content.ToMemory());
        var root = doc.RootElement;
        var key = root.GetProperty("key");
        var (id, enabled, created) = ParseIdAndAttributes(root, key.GetProperty("kid").GetString());
        var kind = KindOf(key);
        return new KeyVersionInfo(id, kind, AlgorithmFor(kind), enabled, created);
    }

    private static KeyKind KindOf(JsonElement key)
    {
        if (key.TryGetProperty("key_ops", out var ops))
            foreach (var op in ops.EnumerateArray())
                if (op.GetString() == "wrapKey") return KeyKind.Wrapping;
        var kty = key.GetProperty("kty").GetString();
        return kty is "EC" or "EC-HSM" ? KeyKind.Signing : KeyKind.Wrapping;
    }

    private static string AlgorithmFor(KeyKind kind) => kind == KeyKind.Wrapping ? KeyAlgorithms.RsaOaep256 : KeyAlgorithms.Es256;

    private static (KeyId Id, bool Enabled, DateTimeOffset Created) ParseIdAndAttributes(JsonElement element, string? kid = null)
    {
        kid ??= element.GetProperty("kid").GetString();
        var id = ParseKid(kid);
        var enabled = true;
        var created = DateTimeOffset.UnixEpoch;
        if (element.TryGetProperty("attributes", out var attributes))
        {
            if (attributes.TryGetProperty("enabled", out var e)) enabled = e.GetBoolean();
            if (attributes.TryGetProperty("created", out var c)) created = DateTimeOffset.FromUnixTimeSeconds(c.GetInt64());
        }
        return (id, enabled, created);
    }

    private static (KeyId KeyId, byte[] Value) ParseKidAndValue(RestResult response)
    {
        using var doc = JsonDocument.Parse(response.Content.ToMemory());
        var kid = ParseKid(doc.RootElement.GetProperty("kid").GetString());
        var value = Base64Url.DecodeFromChars(doc.RootElement.GetProperty("value").GetString());
        return (kid, value);
    }

    /// <summary>A key identifier is https://{vault}/keys/{name}/{version}.</summary>
    internal static KeyId ParseKid(string? kid)
    {
        if (!Uri.TryCreate(kid, UriKind.Absolute, out var uri)) throw new KeyVaultException($"Malformed kid '{kid}'.");
        var segments = uri.AbsolutePath.Trim('/').Split('/');
        if (segments.Length != 3 || segments[0] != "keys") throw new KeyVaultException($"Malformed kid '{kid}'.");
        return new KeyId(Uri.UnescapeDataString(segments[1]), Uri.UnescapeDataString(segments[2]));
    }

    private static void ValidateId(KeyId id)
    {
        KeyNames.Validate(id.Name);
        if (string.IsNullOrEmpty(id.Version) || !id.Version.All(char.IsAsciiLetterOrDigit))
            throw new ArgumentException($"Malformed key version '{id.Version}'.", nameof(id));
    }

    /// <summary>A finished call: status and buffered body (disposing is a no-op; it keeps call sites uniform).</summary>
    private readonly record struct RestResult(int Status, BinaryData Content) : IDisposable
    {
        public void Dispose() { }
    }
}
