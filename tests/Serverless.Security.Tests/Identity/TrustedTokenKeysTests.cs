using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Identity;

/// <summary>An operator's offline issuer and the JWK Set the app trusts: what validates, and every refusal of the trust file.</summary>
public sealed class TrustedTokenKeysTests(KeyringFixture keys) : IClassFixture<KeyringFixture>
{
    private async Task<VaultSigningKeys> KeysTrustingAsync(TrustedTokenKeys? trusted)
    {
        var signingKeys = new VaultSigningKeys(keys.Keyring, await keys.NewKeyAsync(KeyKind.Signing)) { Trusted = trusted };
        await signingKeys.RefreshAsync();
        return signingKeys;
    }

    [Fact]
    public async Task A_token_of_the_offline_issuer_validates_with_its_published_keys_and_carries_its_claims()
    {
        using var issuer = OfflineTokenIssuer.Create();
        var trusted = TrustedTokenKeys.Parse(Encoding.UTF8.GetBytes(issuer.PublicJwks()));
        Assert.Equal([issuer.KeyId], trusted.Keys.Keys);
        var token = issuer.Issue(new TokenRequest("auditor-3", ["auditor"], Lifetime: TimeSpan.FromMinutes(5)));

        var (principal, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), await KeysTrustingAsync(trusted)));
        Assert.Null(error);
        Assert.Equal("auditor-3", principal!.FindFirst(SecurityClaims.Subject)!.Value);
        Assert.True(principal.IsInRole("auditor"));

        // Not trusted: the same token is refused.
        Assert.NotNull((await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), await KeysTrustingAsync(null)))).Error);
    }

    [Fact]
    public void The_key_id_is_the_RFC_7638_thumbprint_of_the_public_key()
    {
        using var issuer = OfflineTokenIssuer.Create();
        var jwk = JsonNode.Parse(issuer.PublicJwks())!["keys"]![0]!;
        // RFC 7638 section 3.2: the required members in lexicographic order, no whitespace.
        var canonical = $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{jwk["x"]}\",\"y\":\"{jwk["y"]}\"}}";
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(canonical))), issuer.KeyId);
        Assert.Equal(issuer.KeyId, (string?)jwk["kid"]);
    }

    [Fact]
    public async Task The_issuer_keeps_the_apps_limits_on_lifetime_and_claims()
    {
        var time = new ManualTimeProvider(DateTimeOffset.Parse("2026-12-07T12:00:00Z"));
        using var issuer = OfflineTokenIssuer.Create(time: time);
        Assert.Throws<ArgumentException>(() => issuer.Issue(new TokenRequest("s", ["operator"], Lifetime: TimeSpan.FromDays(2))));
        Assert.Throws<ArgumentException>(() => issuer.Issue(new TokenRequest("s", [])));
        Assert.Throws<ArgumentException>(() => issuer.Issue(new TokenRequest("s", ["operator"], Claims: new Dictionary<string, string> { ["role"] = "admin" })));

        // Expired at the validator's clock: refused like any expired token.
        var token = issuer.Issue(new TokenRequest("s", ["operator"], Lifetime: TimeSpan.FromMinutes(1)));
        var trusted = TrustedTokenKeys.Parse(Encoding.UTF8.GetBytes(issuer.PublicJwks()));
        var later = new ManualTimeProvider(time.GetUtcNow() + TimeSpan.FromMinutes(10));
        var (_, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), await KeysTrustingAsync(trusted), later));
        Assert.NotNull(error);
    }

    [Fact]
    public void Save_and_load_round_trip_with_an_owner_only_key_and_refuse_to_overwrite()
    {
        using var dir = new TempDirectory();
        string kid;
        using (var issuer = OfflineTokenIssuer.Create())
        {
            issuer.Save(dir.Path);
            kid = issuer.KeyId;
            Assert.Throws<InvalidOperationException>(() => issuer.Save(dir.Path));
        }
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.Path, OfflineTokenIssuer.KeyFileName)));
        using var loaded = OfflineTokenIssuer.Load(dir.Path);
        Assert.Equal(kid, loaded.KeyId);
        Assert.Equal(kid, TrustedTokenKeys.Load(Path.Combine(dir.Path, OfflineTokenIssuer.JwksFileName)).Keys.Keys.Single());

        // A key that is not P-256 is refused.
        using var other = new TempDirectory();
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var path = Path.Combine(other.Path, OfflineTokenIssuer.KeyFileName);
        File.WriteAllText(path, p384.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Throws<InvalidDataException>(() => OfflineTokenIssuer.Load(other.Path));
    }

    public static TheoryData<string, string> BadSets()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var q = key.ExportParameters(true);
        string X(byte[] b) => Base64Url.EncodeToString(b);
        var good = $"\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"{X(q.Q.X!)}\",\"y\":\"{X(q.Q.Y!)}\",\"kid\":\"k1\"";
        var offCurve = (byte[])q.Q.Y!.Clone();
        offCurve[^1] ^= 1;
        return new()
        {
            { "not json", "not JSON" },
            { "[]", "not a JWK Set" },
            { "{\"keys\":{}}", "not a JWK Set" },
            { "{\"keys\":[]}", "1 to 16 keys" },
            { "{\"keys\":[" + string.Join(",", Enumerable.Repeat("{" + good + "}", 17)) + "]}", "1 to 16 keys" },
            { "{\"keys\":[{" + good + "},{" + good + "}]}", "kid is used twice" },
            { "{\"keys\":[{" + good + $",\"d\":\"{X(q.D!)}\"}}]}}", "private key" },
            { "{\"keys\":[{" + good.Replace("\"EC\"", "\"RSA\"") + "}]}", "not an EC P-256 key" },
            { "{\"keys\":[{" + good.Replace("P-256", "P-384") + "}]}", "not an EC P-256 key" },
            { "{\"keys\":[{" + good + ",\"alg\":\"ES384\"}]}", "alg is not ES256" },
            { "{\"keys\":[{" + good + ",\"use\":\"enc\"}]}", "use is not sig" },
            { "{\"keys\":[{" + good.Replace("\"kid\":\"k1\"", "\"kid\":\"\"") + "}]}", "kid must be" },
            { "{\"keys\":[{" + good.Replace("\"kid\":\"k1\"", "\"kid\":\"a b\"") + "}]}", "kid must be" },
            { "{\"keys\":[{" + good.Replace(X(q.Q.X!), X(q.Q.X![..31])) + "}]}", "x is not 32 bytes" },
            { "{\"keys\":[{" + good.Replace(X(q.Q.Y!), X(offCurve)) + "}]}", "not a point on P-256" },
        };
    }

    [Theory]
    [MemberData(nameof(BadSets))]
    public void A_bad_trust_file_is_refused_with_its_reason(string json, string reason)
    {
        var e = Assert.Throws<InvalidDataException>(() => TrustedTokenKeys.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Contains(reason, e.Message);
        Assert.DoesNotContain("\"d\"", e.Message.Replace("(\"d\")", "")); // the message names the member, never echoes key material
    }

    [Fact]
    public void A_trust_file_over_the_limit_is_refused_unread()
    {
        var big = new byte[TrustedTokenKeys.MaxFileBytes + 1];
        Assert.Throws<InvalidDataException>(() => TrustedTokenKeys.Parse(big));
    }
}
