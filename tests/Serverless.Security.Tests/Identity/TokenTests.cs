using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Identity;

public sealed class TokenTests(KeyringFixture keys) : IClassFixture<KeyringFixture>
{
    private async Task<(DevTokenIssuer Issuer, VaultSigningKeys Keys, TokenOptions Options)> SetupAsync(TimeProvider? time = null, TokenOptions? options = null)
    {
        options ??= new TokenOptions { SigningKeyName = await keys.NewKeyAsync(KeyKind.Signing) };
        var issuer = new DevTokenIssuer(keys.Keyring, options, time);
        var signingKeys = new VaultSigningKeys(keys.Keyring, options.SigningKeyName);
        await signingKeys.RefreshAsync();
        return (issuer, signingKeys, options);
    }

    private static Task<(System.Security.Claims.ClaimsPrincipal? Principal, string? Error)> ValidateAsync(string token, TokenOptions options, VaultSigningKeys keys) =>
        TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(options, keys));

    [Fact]
    public async Task A_valid_token_carries_subject_roles_and_tenant()
    {
        var (issuer, signingKeys, options) = await SetupAsync();
        var token = await issuer.IssueAsync(new TokenRequest("client-7", ["federation-client", "clinician"], "hospital-a"));
        var (principal, error) = await ValidateAsync(token, options, signingKeys);
        Assert.Null(error);
        Assert.Equal("client-7", principal!.FindFirst(SecurityClaims.Subject)!.Value);
        Assert.Equal(["federation-client", "clinician"], principal.FindAll(SecurityClaims.Role).Select(c => c.Value));
        Assert.Equal("hospital-a", principal.FindFirst(SecurityClaims.Tenant)!.Value);
        Assert.True(principal.IsInRole("clinician"));
    }

    [Fact]
    public async Task Expired_token_is_refused()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow.AddHours(-3));
        var (issuer, signingKeys, options) = await SetupAsync(clock);
        var token = await issuer.IssueAsync(new TokenRequest("u", ["operator"], Lifetime: TimeSpan.FromHours(1)));
        var (principal, error) = await ValidateAsync(token, options, signingKeys);
        Assert.Null(principal);
        Assert.Contains("IDX10223", error); // lifetime validation failed: token expired
    }

    [Fact]
    public async Task Token_from_the_future_is_refused()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow.AddHours(2));
        var (issuer, signingKeys, options) = await SetupAsync(clock);
        var (principal, _) = await ValidateAsync(await issuer.IssueAsync(new TokenRequest("u", ["operator"])), options, signingKeys);
        Assert.Null(principal);
    }

    [Fact]
    public async Task Wrong_audience_or_issuer_is_refused()
    {
        var (issuer, signingKeys, options) = await SetupAsync();
        var other = new DevTokenIssuer(keys.Keyring, options with { Audience = "someone-else" });
        var (p1, e1) = await ValidateAsync(await other.IssueAsync(new TokenRequest("u", ["operator"])), options, signingKeys);
        Assert.Null(p1);
        Assert.Contains("IDX10214", e1); // audience validation failed
        var impostor = new DevTokenIssuer(keys.Keyring, options with { Issuer = "impostor" });
        var (p2, e2) = await ValidateAsync(await impostor.IssueAsync(new TokenRequest("u", ["operator"])), options, signingKeys);
        Assert.Null(p2);
        Assert.Contains("IDX10205", e2); // issuer validation failed
    }

    [Fact]
    public async Task Unsigned_alg_none_token_is_refused()
    {
        var (issuer, signingKeys, options) = await SetupAsync();
        var valid = await issuer.IssueAsync(new TokenRequest("u", ["admin"]));
        var payload = valid.Split('.')[1];
        var header = Base64Url.EncodeToString("""{"alg":"none","typ":"JWT"}"""u8);
        foreach (var unsigned in new[] { $"{header}.{payload}.", $"{header}.{payload}" })
        {
            var (principal, error) = await ValidateAsync(unsigned, options, signingKeys);
            Assert.Null(principal);
            Assert.NotNull(error);
        }
    }

    [Fact]
    public async Task Tampered_claims_or_a_foreign_signature_are_refused()
    {
        var (issuer, signingKeys, options) = await SetupAsync();
        var token = await issuer.IssueAsync(new TokenRequest("u", ["auditor"]));
        var parts = token.Split('.');
        var claims = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(parts[1])).Replace("\"auditor\"", "\"admin\"");
        var tampered = $"{parts[0]}.{Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims))}.{parts[2]}";
        Assert.Null((await ValidateAsync(tampered, options, signingKeys)).Principal);

        // Same kid, same claims, signed by an attacker's own P-256 key.
        using var attacker = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var input = $"{parts[0]}.{parts[1]}";
        var forged = input + "." + Base64Url.EncodeToString(attacker.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256));
        Assert.Null((await ValidateAsync(forged, options, signingKeys)).Principal);
        Assert.NotNull((await ValidateAsync(token, options, signingKeys)).Principal);
    }

    [Fact]
    public async Task Rotation_keeps_old_tokens_valid_until_the_old_version_is_disabled()
    {
        var (issuer, signingKeys, options) = await SetupAsync();
        var old = await issuer.IssueAsync(new TokenRequest("u", ["operator"]));
        var v1 = (await keys.Keyring.GetCurrentVersionAsync(options.SigningKeyName))!.Id;
        await keys.Keyring.RotateKeyAsync(options.SigningKeyName);
        await signingKeys.RefreshAsync();
        var fresh = await issuer.IssueAsync(new TokenRequest("u", ["operator"]));
        Assert.NotNull((await ValidateAsync(old, options, signingKeys)).Principal);
        Assert.NotNull((await ValidateAsync(fresh, options, signingKeys)).Principal);

        await keys.Keyring.DisableVersionAsync(v1);
        await signingKeys.RefreshAsync();
        Assert.Null((await ValidateAsync(old, options, signingKeys)).Principal);
        Assert.NotNull((await ValidateAsync(fresh, options, signingKeys)).Principal);
    }

    [Fact]
    public async Task A_ten_year_token_signed_by_the_vault_key_is_refused()
    {
        var (_, signingKeys, options) = await SetupAsync();
        // A misconfigured issuer (or anyone with the vault's sign permission) signs with the real key.
        var lax = new DevTokenIssuer(keys.Keyring, options with { MaxLifetime = TimeSpan.FromDays(3650) });
        var tenYears = await lax.IssueAsync(new TokenRequest("u", ["admin"], Lifetime: TimeSpan.FromDays(3650)));
        var (principal, error) = await ValidateAsync(tenYears, options, signingKeys);
        Assert.Null(principal);
        Assert.Contains("maximum lifetime", error);
        // At the cap it validates; just over it (beyond the clock skew) it does not.
        Assert.NotNull((await ValidateAsync(await lax.IssueAsync(new TokenRequest("u", ["admin"], Lifetime: options.MaxLifetime)), options, signingKeys)).Principal);
        Assert.Null((await ValidateAsync(await lax.IssueAsync(new TokenRequest("u", ["admin"], Lifetime: options.MaxLifetime + TimeSpan.FromMinutes(5))), options, signingKeys)).Principal);
    }

    [Fact]
    public async Task A_disabled_signing_key_stops_validating_once_the_key_set_is_stale_without_an_explicit_refresh()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var options = new TokenOptions { SigningKeyName = await keys.NewKeyAsync(KeyKind.Signing) };
        var issuer = new DevTokenIssuer(keys.Keyring, options);
        var signingKeys = new VaultSigningKeys(keys.Keyring, options.SigningKeyName, clock) { MaxAge = TimeSpan.FromMinutes(1) };
        await signingKeys.EnsureFreshAsync();
        var old = await issuer.IssueAsync(new TokenRequest("u", ["operator"]));
        var v1 = (await keys.Keyring.GetCurrentVersionAsync(options.SigningKeyName))!.Id;
        await keys.Keyring.RotateKeyAsync(options.SigningKeyName);
        await keys.Keyring.DisableVersionAsync(v1);   // elsewhere: another instance, or by hand in the vault

        await signingKeys.EnsureFreshAsync();          // still fresh: the cached set is used
        Assert.NotNull((await ValidateAsync(old, options, signingKeys)).Principal);
        clock.Advance(TimeSpan.FromMinutes(2));
        await signingKeys.EnsureFreshAsync();          // stale: re-read from the vault
        Assert.Null((await ValidateAsync(old, options, signingKeys)).Principal);
        Assert.NotNull((await ValidateAsync(await issuer.IssueAsync(new TokenRequest("u", ["operator"])), options, signingKeys)).Principal);
    }

    [Fact]
    public async Task Issuing_validates_its_input()
    {
        var (issuer, _, _) = await SetupAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => issuer.IssueAsync(new TokenRequest("u", [])));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => issuer.IssueAsync(new TokenRequest(" ", ["operator"])));
        await Assert.ThrowsAsync<ArgumentException>(() => issuer.IssueAsync(new TokenRequest("u", ["operator"], Lifetime: TimeSpan.FromDays(30))));
    }
}

public sealed class BearerOverHttpTests : IAsyncLifetime
{
    private SecuredTestApp _app = null!;
    public async Task InitializeAsync() => _app = await SecuredTestApp.StartAsync();
    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task Missing_or_bad_tokens_get_401_ProblemDetails_with_a_bearer_challenge()
    {
        var missing = await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", null);
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Bearer", missing.Headers.WwwAuthenticate.ToString());

        var garbage = await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", "not.a.token");
        Assert.Equal(HttpStatusCode.Unauthorized, garbage.StatusCode);

        var ok = await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", await _app.TokenAsync("a", ["auditor"]));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Anonymous_health_is_open_and_undeclared_endpoints_are_denied_by_default()
    {
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/health", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _app.SendAsync(HttpMethod.Get, "/undeclared", null)).StatusCode);
        var admin = await _app.SendAsync(HttpMethod.Get, "/undeclared", await _app.TokenAsync("root", ["admin"]));
        Assert.Equal(HttpStatusCode.Forbidden, admin.StatusCode);
        Assert.Contains("declares no permission", await admin.Content.ReadAsStringAsync());
    }
}
