using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure.Core.Pipeline;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Keys;

/// <summary>
/// Records the HTTP requests the client sends and checks them against the documented shape of the
/// Key Vault keys REST API (learn.microsoft.com/rest/api/keyvault/keys: wrap-key, unwrap-key, sign,
/// verify, create-key, rotate-key, get-key-versions, update-key).
/// </summary>
public sealed class AzureKeyVaultWireFormatTests
{
    private const string Vault = "https://myvault.vault.azure.net/";
    private const string Kid = "https://myvault.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef";

    private sealed record Recorded(string Method, string PathAndQuery, string? Authorization, string? ContentType, string? Accept, string Body);

    private sealed class RecordingHandler(Func<HttpRequestMessage, (HttpStatusCode, string)> respond) : HttpMessageHandler
    {
        public List<Recorded> Requests { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(cancellationToken);
            Requests.Add(new Recorded(request.Method.Method, request.RequestUri!.PathAndQuery, request.Headers.Authorization?.ToString(),
                request.Content?.Headers.ContentType?.MediaType, request.Headers.Accept.ToString(), body));
            var (status, json) = respond(request);
            return new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        }
    }

    private static (AzureKeyVaultClient Client, RecordingHandler Handler, StaticTokenCredential Credential) NewClient(Func<HttpRequestMessage, (HttpStatusCode, string)> respond)
    {
        var handler = new RecordingHandler(respond);
        var credential = new StaticTokenCredential("recorded-token");
        var client = new AzureKeyVaultClient(new Uri(Vault), credential, new AzureKeyVaultClientOptions
        {
            Transport = new HttpClientTransport(handler),
            Retry = { MaxRetries = 0 },
        });
        return (client, handler, credential);
    }

    private const string VersionsPage =
        """{"value":[{"kid":"https://myvault.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef","attributes":{"enabled":true,"created":1700000000,"updated":1700000000}}],"nextLink":null}""";
    private const string RsaBundle =
        """{"key":{"kid":"https://myvault.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef","kty":"RSA","key_ops":["wrapKey","unwrapKey"],"n":"AQAB","e":"AQAB"},"attributes":{"enabled":true,"created":1700000000}}""";

    private static (HttpStatusCode, string) Respond(HttpRequestMessage request)
    {
        var path = request.RequestUri!.AbsolutePath;
        if (path.EndsWith("/versions")) return (HttpStatusCode.OK, VersionsPage);
        if (path.EndsWith("/verify")) return (HttpStatusCode.OK, """{"value":true}""");
        if (path.EndsWith("/wrapkey") || path.EndsWith("/unwrapkey") || path.EndsWith("/sign"))
            return (HttpStatusCode.OK, $$"""{"kid":"{{Kid}}","value":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}""");
        return (HttpStatusCode.OK, RsaBundle);
    }

    private static Dictionary<string, string> BodyFields(string body)
    {
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString());
    }

    [Fact]
    public async Task Wrapkey_is_a_POST_with_api_version_bearer_token_and_alg_value_body()
    {
        var (client, handler, credential) = NewClient(Respond);
        var dataKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var wrapped = await client.WrapKeyAsync("cmk", dataKey);

        // First the current version is looked up: GET keys/cmk (the key type), GET keys/cmk/versions.
        Assert.Equal(["GET /keys/cmk?api-version=7.4", "GET /keys/cmk/versions?api-version=7.4",
            "POST /keys/cmk/0123456789abcdef0123456789abcdef/wrapkey?api-version=7.4"], handler.Requests.Select(r => $"{r.Method} {r.PathAndQuery}"));
        var wrap = handler.Requests[^1];
        Assert.Equal("Bearer recorded-token", wrap.Authorization);
        Assert.Equal("application/json", wrap.ContentType);
        Assert.Contains("application/json", wrap.Accept);
        var fields = BodyFields(wrap.Body);
        Assert.Equal(["alg", "value"], fields.Keys.Order());
        Assert.Equal("RSA-OAEP-256", fields["alg"]);
        Assert.Equal("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", fields["value"]); // base64url, no padding
        Assert.Equal(new KeyId("cmk", "0123456789abcdef0123456789abcdef"), wrapped.KeyId);
        Assert.Equal(dataKey, wrapped.Ciphertext); // the response value, base64url-decoded
        Assert.All(credential.RequestedScopes, s => Assert.Equal("https://vault.azure.net/.default", s));
    }

    [Fact]
    public async Task Unwrapkey_sign_and_verify_use_the_named_version_and_documented_fields()
    {
        var (client, handler, _) = NewClient(Respond);
        var id = new KeyId("cmk", "0123456789abcdef0123456789abcdef");
        await client.UnwrapKeyAsync(new WrappedKey(id, "RSA-OAEP-256", [0xFB, 0xFF]));
        var unwrap = handler.Requests.Single();
        Assert.Equal("POST", unwrap.Method);
        Assert.Equal("/keys/cmk/0123456789abcdef0123456789abcdef/unwrapkey?api-version=7.4", unwrap.PathAndQuery);
        Assert.Equal(new Dictionary<string, string> { ["alg"] = "RSA-OAEP-256", ["value"] = "-_8" }, BodyFields(unwrap.Body));

        var digest = SHA256.HashData("x"u8);
        Assert.True(await client.VerifyAsync(new KeySignature(id, "ES256", [1, 2, 3]), digest));
        var verify = handler.Requests[^1];
        Assert.Equal("/keys/cmk/0123456789abcdef0123456789abcdef/verify?api-version=7.4", verify.PathAndQuery);
        var fields = BodyFields(verify.Body);
        Assert.Equal(["alg", "digest", "value"], fields.Keys.Order());
        Assert.Equal(System.Buffers.Text.Base64Url.EncodeToString(digest), fields["digest"]);
        Assert.Equal("AQID", fields["value"]);

        handler.Requests.Clear();
        await client.SignAsync("cmk", digest);
        var sign = handler.Requests[^1];
        Assert.Equal("POST /keys/cmk/0123456789abcdef0123456789abcdef/sign?api-version=7.4", $"{sign.Method} {sign.PathAndQuery}");
        Assert.Equal(new Dictionary<string, string> { ["alg"] = "ES256", ["value"] = System.Buffers.Text.Base64Url.EncodeToString(digest) }, BodyFields(sign.Body));
    }

    [Fact]
    public async Task Create_rotate_and_disable_have_the_documented_shape()
    {
        var created = false;
        var (client, handler, _) = NewClient(request =>
        {
            // The existence probe answers 404 with Key Vault's error shape until the key exists.
            if (request.Method == HttpMethod.Get && request.RequestUri!.AbsolutePath == "/keys/cmk" && !created)
                return (HttpStatusCode.NotFound, """{"error":{"code":"KeyNotFound","message":"A key with (name/id) cmk was not found in this key vault."}}""");
            if (request.RequestUri!.AbsolutePath.EndsWith("/create")) created = true;
            return Respond(request);
        });
        await client.CreateKeyAsync("cmk", KeyKind.Wrapping);
        var create = handler.Requests[^1];
        Assert.Equal("POST /keys/cmk/create?api-version=7.4", $"{create.Method} {create.PathAndQuery}");
        using (var doc = JsonDocument.Parse(create.Body))
        {
            Assert.Equal("RSA", doc.RootElement.GetProperty("kty").GetString());
            Assert.Equal(3072, doc.RootElement.GetProperty("key_size").GetInt32());
            Assert.Equal(["wrapKey", "unwrapKey"], doc.RootElement.GetProperty("key_ops").EnumerateArray().Select(e => e.GetString()));
        }

        await client.RotateKeyAsync("cmk");
        var rotate = handler.Requests[^1];
        Assert.Equal("POST /keys/cmk/rotate?api-version=7.4", $"{rotate.Method} {rotate.PathAndQuery}");
        Assert.Equal("", rotate.Body);

        await client.DisableVersionAsync(new KeyId("cmk", "0123456789abcdef0123456789abcdef"));
        var patch = handler.Requests[^1];
        Assert.Equal("PATCH /keys/cmk/0123456789abcdef0123456789abcdef?api-version=7.4", $"{patch.Method} {patch.PathAndQuery}");
        Assert.Equal("""{"attributes":{"enabled":false}}""", patch.Body);
    }

    [Fact]
    public async Task Api_version_7_5_is_sent_when_configured_and_errors_carry_the_service_message()
    {
        var handler = new RecordingHandler(_ => (HttpStatusCode.Forbidden, """{"error":{"code":"Forbidden","message":"The user does not have keys wrapKey permission."}}"""));
        var client = new AzureKeyVaultClient(new Uri(Vault), new StaticTokenCredential("t"), new AzureKeyVaultClientOptions
        {
            Transport = new HttpClientTransport(handler), Retry = { MaxRetries = 0 }, ApiVersion = "7.5",
        });
        var error = await Assert.ThrowsAsync<KeyVaultException>(() => client.RotateKeyAsync("cmk"));
        Assert.Equal("/keys/cmk/rotate?api-version=7.5", handler.Requests.Single().PathAndQuery);
        Assert.Contains("403", error.Message);
        Assert.Contains("wrapKey permission", error.Message);
    }
}
