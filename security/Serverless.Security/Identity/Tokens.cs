using System.Buffers.Text;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Serverless.Security.Keys;

namespace Serverless.Security.Identity;

/// <summary>Claim types the platform reads from tokens and certificates (JWT names, not mapped to WS-* URIs).</summary>
public static class SecurityClaims
{
    public const string Subject = "sub";
    public const string Role = "role";
    public const string Tenant = "tenant";
    public const string AuthenticationMethod = "amr";
}

/// <summary>Who issues bearer tokens and for whom, and the vault key that signs them.</summary>
public sealed record TokenOptions
{
    public string Issuer { get; init; } = "serverless-dev";
    public string Audience { get; init; } = "serverless-api";

    /// <summary>Signing key (ES256) in the key vault; rotate it like any other key, old versions keep validating until disabled.</summary>
    public string SigningKeyName { get; init; } = "token-signing";

    public TimeSpan DefaultLifetime { get; init; } = TimeSpan.FromHours(1);
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Tolerated clock difference between issuer and validator.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>What a token says about its holder.</summary>
public sealed record TokenRequest(string Subject, IReadOnlyList<string> Roles, string? Tenant = null, TimeSpan? Lifetime = null);

/// <summary>
/// Issues ES256 JWTs (RFC 7519, RFC 7515) signed through the key vault: the private key never leaves
/// it. The development CLI (<c>serverless-client token issue</c>) calls <see cref="IssueAsync"/>.
/// </summary>
public sealed class DevTokenIssuer(IKeyVault vault, TokenOptions? options = null, TimeProvider? time = null)
{
    private readonly IKeyVault _vault = vault ?? throw new ArgumentNullException(nameof(vault));
    private readonly TokenOptions _options = options ?? new TokenOptions();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Creates the signing key if it does not exist yet.</summary>
    public async Task EnsureSigningKeyAsync(CancellationToken cancellationToken = default)
    {
        if (await _vault.GetCurrentVersionAsync(_options.SigningKeyName, cancellationToken) is null)
            await _vault.CreateKeyAsync(_options.SigningKeyName, KeyKind.Signing, cancellationToken);
    }

    /// <summary>A signed token for <paramref name="request"/>.</summary>
    /// <exception cref="ArgumentException">Empty subject, no roles, or a lifetime beyond the maximum.</exception>
    public async Task<string> IssueAsync(TokenRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.Subject);
        if (request.Roles is not { Count: > 0 }) throw new ArgumentException("A token needs at least one role.", nameof(request));
        var lifetime = request.Lifetime ?? _options.DefaultLifetime;
        if (lifetime <= TimeSpan.Zero || lifetime > _options.MaxLifetime)
            throw new ArgumentException($"Token lifetime must be in (0, {_options.MaxLifetime}].", nameof(request));

        var current = await _vault.GetCurrentVersionAsync(_options.SigningKeyName, cancellationToken)
            ?? throw new KeyNotFoundException($"Signing key '{_options.SigningKeyName}' does not exist; call EnsureSigningKeyAsync first.");
        var now = _time.GetUtcNow();
        var header = Json(w =>
        {
            w.WriteString("alg", "ES256");
            w.WriteString("typ", "JWT");
            w.WriteString("kid", current.Id.ToString());
        });
        var payload = Json(w =>
        {
            w.WriteString("iss", _options.Issuer);
            w.WriteString("aud", _options.Audience);
            w.WriteString(SecurityClaims.Subject, request.Subject);
            w.WriteNumber("iat", now.ToUnixTimeSeconds());
            w.WriteNumber("nbf", now.ToUnixTimeSeconds());
            w.WriteNumber("exp", (now + lifetime).ToUnixTimeSeconds());
            w.WriteString("jti", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
            w.WriteStartArray(SecurityClaims.Role);
            foreach (var role in request.Roles) w.WriteStringValue(role);
            w.WriteEndArray();
            if (request.Tenant is not null) w.WriteString(SecurityClaims.Tenant, request.Tenant);
        });
        var signingInput = Base64Url.EncodeToString(header) + "." + Base64Url.EncodeToString(payload);
        var digest = SHA256.HashData(Encoding.ASCII.GetBytes(signingInput));
        var signature = await _vault.SignAsync(_options.SigningKeyName, digest, cancellationToken);
        if (signature.KeyId != current.Id) throw new KeyVaultException("The signing key rotated while a token was being issued; retry.");
        return signingInput + "." + Base64Url.EncodeToString(signature.Value);
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }
        return buffer.ToArray();
    }
}

/// <summary>
/// The public halves of every enabled version of the token-signing key, as validation keys keyed
/// by "name/version" (the JWT <c>kid</c>). Refresh after a rotation or a disable.
/// </summary>
public sealed class VaultSigningKeys(IKeyVault vault, string signingKeyName)
{
    private volatile Dictionary<string, SecurityKey> _keys = [];

    public IReadOnlyCollection<SecurityKey> Keys => _keys.Values;

    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        var keys = new Dictionary<string, SecurityKey>(StringComparer.Ordinal);
        foreach (var version in await vault.ListVersionsAsync(signingKeyName, cancellationToken))
        {
            if (!version.Enabled) continue;
            var ec = ECDsa.Create();
            ec.ImportSubjectPublicKeyInfo(await vault.GetPublicKeyAsync(version.Id, cancellationToken), out _);
            keys[version.Id.ToString()] = new ECDsaSecurityKey(ec) { KeyId = version.Id.ToString() };
        }
        _keys = keys;
    }

    /// <summary>The key a token names in its header; none for an unknown kid (the token then fails).</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid) =>
        kid is not null && _keys.TryGetValue(kid, out var key) ? [key] : [];
}

/// <summary>Token validation: issuer, audience, lifetime and an ES256 signature by a known vault key; unsigned tokens refused.</summary>
public static class TokenValidation
{
    public static TokenValidationParameters CreateParameters(TokenOptions options, VaultSigningKeys keys)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        return new TokenValidationParameters
        {
            ValidIssuer = options.Issuer,
            ValidAudience = options.Audience,
            ValidateIssuer = true,
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true, // "alg": "none" is refused
            ValidateIssuerSigningKey = true,
            ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
            IssuerSigningKeyResolver = (_, _, kid, _) => keys.Resolve(kid),
            ClockSkew = options.ClockSkew,
            NameClaimType = SecurityClaims.Subject,
            RoleClaimType = SecurityClaims.Role,
            AuthenticationType = "Bearer",
        };
    }

    /// <summary>Validates outside ASP.NET Core (CLI, queue triggers); returns the principal or the reason it was refused.</summary>
    public static async Task<(ClaimsPrincipal? Principal, string? Error)> ValidateAsync(string token, TokenValidationParameters parameters)
    {
        var result = await new JsonWebTokenHandler { MapInboundClaims = false }.ValidateTokenAsync(token, parameters);
        return result.IsValid
            ? (new ClaimsPrincipal(result.ClaimsIdentity), null)
            : (null, result.Exception?.Message ?? "invalid token");
    }
}
