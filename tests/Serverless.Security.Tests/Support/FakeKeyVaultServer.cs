using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Security.Identity;

namespace Serverless.Security.Tests.Support;

/// <summary>
/// A stand-in for Azure Key Vault's keys REST API on 127.0.0.1 over HTTPS (Azure ships no emulator):
/// real RSA-OAEP-256 wrap/unwrap and ES256 sign/verify with keys it generates, versions, rotation,
/// disable, paged version lists, bearer-token and api-version checks, and Key Vault's error shape.
/// </summary>
public sealed class FakeKeyVaultServer : IAsyncDisposable
{
    public const string Token = "fake-vault-token";
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, List<FakeKey>> _keys = new();
    private long _clock = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public ConcurrentQueue<string> Requests { get; } = new();
    public DevCertificateAuthority Authority { get; }
    public Uri VaultUri { get; private set; } = null!;

    private sealed class FakeKey
    {
        public required string Version { get; init; }
        public required long Created { get; init; }
        public bool Enabled { get; set; } = true;
        public RSA? Rsa { get; init; }
        public ECDsa? Ec { get; init; }
        public required string[] Ops { get; init; }
    }

    private FakeKeyVaultServer(DevCertificateAuthority authority, WebApplication app)
    {
        Authority = authority;
        _app = app;
    }

    public static async Task<FakeKeyVaultServer> StartAsync()
    {
        var authority = DevCertificateAuthority.Create("Fake Key Vault CA");
        var serverCertificate = authority.IssueServerCertificate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(serverCertificate)));
        var app = builder.Build();
        var server = new FakeKeyVaultServer(authority, app);
        server.Map(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.VaultUri = new Uri(address.Replace("[::1]", "127.0.0.1") + "/");
        return server;
    }

    private void Map(WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            Requests.Enqueue($"{context.Request.Method} {context.Request.Path}{context.Request.QueryString}");
            if (context.Request.Headers.Authorization != $"Bearer {Token}")
            {
                await Error(context, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.");
                return;
            }
            if (context.Request.Query["api-version"] != "7.4")
            {
                await Error(context, 400, "BadParameter", "The api-version is missing or unsupported.");
                return;
            }
            await next(context);
        });

        app.MapGet("/keys/{name}", (string name, HttpContext c) =>
            _keys.TryGetValue(name, out var versions) ? Results.Json(Bundle(name, versions[^1])) : NotFound(name));

        app.MapPost("/keys/{name}/create", async (string name, HttpContext c) =>
        {
            var body = await JsonNode.ParseAsync(c.Request.Body);
            var kty = (string?)body?["kty"];
            var ops = body?["key_ops"]?.AsArray().Select(o => (string)o!).ToArray() ?? [];
            FakeKey key = kty switch
            {
                "RSA" => new FakeKey { Version = NewVersion(), Created = Tick(), Rsa = RSA.Create((int?)body?["key_size"] ?? 2048), Ops = ops },
                "EC" when (string?)body?["crv"] == "P-256" => new FakeKey { Version = NewVersion(), Created = Tick(), Ec = ECDsa.Create(ECCurve.NamedCurves.nistP256), Ops = ops },
                _ => throw new BadHttpRequestException("kty"),
            };
            var list = _keys.GetOrAdd(name, _ => []);
            lock (list) list.Add(key);
            return Results.Json(Bundle(name, key));
        });

        app.MapPost("/keys/{name}/rotate", (string name) =>
        {
            if (!_keys.TryGetValue(name, out var list)) return NotFound(name);
            FakeKey key;
            lock (list)
            {
                var last = list[^1];
                key = new FakeKey
                {
                    Version = NewVersion(), Created = Tick(), Ops = last.Ops,
                    Rsa = last.Rsa is null ? null : RSA.Create(last.Rsa.KeySize),
                    Ec = last.Ec is null ? null : ECDsa.Create(ECCurve.NamedCurves.nistP256),
                };
                list.Add(key);
            }
            return Results.Json(Bundle(name, key));
        });

        app.MapGet("/keys/{name}/versions", (string name, HttpContext c) =>
        {
            if (!_keys.TryGetValue(name, out var list)) return NotFound(name);
            // Two per page, newest first, to exercise nextLink paging and the client's ordering.
            var skip = int.TryParse(c.Request.Query["$skiptoken"], out var s) ? s : 0;
            FakeKey[] all;
            lock (list) all = list.AsEnumerable().Reverse().ToArray();
            var page = all.Skip(skip).Take(2).Select(k => new JsonObject { ["kid"] = Kid(name, k), ["attributes"] = Attributes(k) }).ToArray();
            var next = skip + 2 < all.Length ? $"{VaultUri}keys/{name}/versions?api-version=7.4&$skiptoken={skip + 2}" : null;
            return Results.Json(new JsonObject { ["value"] = new JsonArray(page), ["nextLink"] = next });
        });

        app.MapGet("/keys/{name}/{version}", (string name, string version) =>
            Find(name, version) is { } key ? Results.Json(Bundle(name, key)) : NotFound(name));

        app.MapMethods("/keys/{name}/{version}", ["PATCH"], async (string name, string version, HttpContext c) =>
        {
            if (Find(name, version) is not { } key) return NotFound(name);
            var body = await JsonNode.ParseAsync(c.Request.Body);
            if (body?["attributes"]?["enabled"] is { } enabled) key.Enabled = (bool)enabled;
            return Results.Json(Bundle(name, key));
        });

        app.MapPost("/keys/{name}/{version}/{operation}", async (string name, string version, string operation, HttpContext c) =>
        {
            if (Find(name, version) is not { } key) return NotFound(name);
            if (!key.Enabled) return Results.Json(ErrorBody("Forbidden", $"Operation {operation} is not allowed on a disabled key."), statusCode: 403);
            var body = (await JsonNode.ParseAsync(c.Request.Body))!.AsObject();
            var alg = (string?)body["alg"];
            byte[] Value(string field) => Base64Url.DecodeFromChars((string?)body[field]);
            var kid = Kid(name, key);
            try
            {
                switch (operation)
                {
                    case "wrapkey" when alg == "RSA-OAEP-256" && key.Rsa is not null:
                        return Results.Json(new JsonObject { ["kid"] = kid, ["value"] = Base64Url.EncodeToString(key.Rsa.Encrypt(Value("value"), RSAEncryptionPadding.OaepSHA256)) });
                    case "unwrapkey" when alg == "RSA-OAEP-256" && key.Rsa is not null:
                        return Results.Json(new JsonObject { ["kid"] = kid, ["value"] = Base64Url.EncodeToString(key.Rsa.Decrypt(Value("value"), RSAEncryptionPadding.OaepSHA256)) });
                    case "sign" when alg == "ES256" && key.Ec is not null:
                        return Results.Json(new JsonObject { ["kid"] = kid, ["value"] = Base64Url.EncodeToString(key.Ec.SignHash(Value("value"))) });
                    case "verify" when alg == "ES256" && key.Ec is not null:
                        return Results.Json(new JsonObject { ["value"] = key.Ec.VerifyHash(Value("digest"), Value("value")) });
                }
            }
            catch (CryptographicException e)
            {
                return Results.Json(ErrorBody("BadParameter", e.Message), statusCode: 400);
            }
            return Results.Json(ErrorBody("BadParameter", $"{operation} with '{alg}' is not supported by this key."), statusCode: 400);
        });
    }

    private FakeKey? Find(string name, string version)
    {
        if (!_keys.TryGetValue(name, out var list)) return null;
        lock (list) return list.Find(k => k.Version == version);
    }

    private long Tick() => Interlocked.Increment(ref _clock);
    private static string NewVersion() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    private string Kid(string name, FakeKey key) => $"{VaultUri}keys/{name}/{key.Version}";
    private static JsonObject Attributes(FakeKey key) => new() { ["enabled"] = key.Enabled, ["created"] = key.Created, ["updated"] = key.Created, ["recoveryLevel"] = "Recoverable+Purgeable" };

    private JsonObject Bundle(string name, FakeKey key)
    {
        var jwk = new JsonObject { ["kid"] = Kid(name, key), ["key_ops"] = new JsonArray(key.Ops.Select(o => (JsonNode)o!).ToArray()) };
        if (key.Rsa is not null)
        {
            var p = key.Rsa.ExportParameters(false);
            jwk["kty"] = "RSA";
            jwk["n"] = Base64Url.EncodeToString(p.Modulus);
            jwk["e"] = Base64Url.EncodeToString(p.Exponent);
        }
        else
        {
            var p = key.Ec!.ExportParameters(false);
            jwk["kty"] = "EC";
            jwk["crv"] = "P-256";
            jwk["x"] = Base64Url.EncodeToString(p.Q.X);
            jwk["y"] = Base64Url.EncodeToString(p.Q.Y);
        }
        return new JsonObject { ["key"] = jwk, ["attributes"] = Attributes(key) };
    }

    private static JsonObject ErrorBody(string code, string message) => new() { ["error"] = new JsonObject { ["code"] = code, ["message"] = message } };
    private static IResult NotFound(string name) => Results.Json(ErrorBody("KeyNotFound", $"A key with (name/id) {name} was not found in this key vault."), statusCode: 404);

    private static Task Error(HttpContext context, int status, string code, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(ErrorBody(code, message));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Authority.Dispose();
    }
}
