using System.Buffers.Text;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Serverless.Security.Identity;

/// <summary>Claim types the platform reads from tokens and certificates (JWT names, not mapped to WS-* URIs).</summary>
public static class SecurityClaims
{
    public const string Subject = "sub";
    public const string Role = "role";
    public const string Tenant = "tenant";
    public const string AuthenticationMethod = "amr";

    /// <summary>The one federation a client token is good for.</summary>
    public const string Federation = "fed";

    /// <summary>SHA-256 thumbprint (lower-case hex) of the certificate a client token is bound to (the name RFC 8705 uses inside <c>cnf</c>).</summary>
    public const string CertificateThumbprint = "x5t#S256";
}

/// <summary>Who issues bearer tokens and for whom, and the vault key that signs them.</summary>
public sealed record TokenOptions
{
    public string Issuer { get; init; } = "serverless-dev";
    public string Audience { get; init; } = "serverless-api";

    /// <summary>Signing key (ES256) in the key vault; rotate it like any other key, old versions keep validating until disabled.</summary>
    public string SigningKeyName { get; init; } = "token-signing";

    public TimeSpan DefaultLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The longest lifetime issued, and accepted: a validator refuses a token valid for longer, whoever signed it.</summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Tolerated clock difference between issuer and validator.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>What a token says about its holder; <paramref name="Claims"/> adds string claims (not the registered or platform ones).</summary>
public sealed record TokenRequest(string Subject, IReadOnlyList<string> Roles, string? Tenant = null, TimeSpan? Lifetime = null,
    IReadOnlyDictionary<string, string>? Claims = null);

/// <summary>
/// Issues ES256 JWTs (RFC 7519, RFC 7515) signed through the key vault: the private key never leaves
/// it. The app issues federation clients' tokens with it at enrollment.
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
        var lifetime = JwtAssembly.CheckRequest(request, _options);
        var current = await _vault.GetCurrentVersionAsync(_options.SigningKeyName, cancellationToken)
            ?? throw new KeyNotFoundException($"Signing key '{_options.SigningKeyName}' does not exist; call EnsureSigningKeyAsync first.");
        var signingInput = JwtAssembly.SigningInput(_options, request, current.Id.ToString(), _time.GetUtcNow(), lifetime);
        var digest = SHA256.HashData(Encoding.ASCII.GetBytes(signingInput));
        var signature = await _vault.SignAsync(_options.SigningKeyName, digest, cancellationToken);
        if (signature.KeyId != current.Id) throw new KeyVaultException("The signing key rotated while a token was being issued; retry.");
        return signingInput + "." + Base64Url.EncodeToString(signature.Value);
    }
}

/// <summary>The header and claims of an ES256 JWT (RFC 7519, RFC 7515) as every issuer here writes them; the signature is the caller's.</summary>
internal static class JwtAssembly
{
    /// <summary>Checks the request against the options and returns the lifetime to issue.</summary>
    public static TimeSpan CheckRequest(TokenRequest request, TokenOptions options)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.Subject);
        if (request.Roles is not { Count: > 0 }) throw new ArgumentException("A token needs at least one role.", nameof(request));
        if (request.Claims is { } extra && extra.Keys.Any(k => ReservedClaims.Contains(k)))
            throw new ArgumentException("Extra claims cannot replace a registered or platform claim.", nameof(request));
        var lifetime = request.Lifetime ?? options.DefaultLifetime;
        if (lifetime <= TimeSpan.Zero || lifetime > options.MaxLifetime)
            throw new ArgumentException($"Token lifetime must be in (0, {options.MaxLifetime}].", nameof(request));
        return lifetime;
    }

    /// <summary><c>base64url(header) "." base64url(payload)</c>, the input the signature covers.</summary>
    public static string SigningInput(TokenOptions options, TokenRequest request, string keyId, DateTimeOffset now, TimeSpan lifetime)
    {
        var header = Json(w =>
        {
            w.WriteString("alg", "ES256");
            w.WriteString("typ", "JWT");
            w.WriteString("kid", keyId);
        });
        var payload = Json(w =>
        {
            w.WriteString("iss", options.Issuer);
            w.WriteString("aud", options.Audience);
            w.WriteString(SecurityClaims.Subject, request.Subject);
            w.WriteNumber("iat", now.ToUnixTimeSeconds());
            w.WriteNumber("nbf", now.ToUnixTimeSeconds());
            w.WriteNumber("exp", (now + lifetime).ToUnixTimeSeconds());
            w.WriteString("jti", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
            w.WriteStartArray(SecurityClaims.Role);
            foreach (var role in request.Roles) w.WriteStringValue(role);
            w.WriteEndArray();
            if (request.Tenant is not null) w.WriteString(SecurityClaims.Tenant, request.Tenant);
            if (request.Claims is { } claims)
                foreach (var (name, value) in claims) w.WriteString(name, value);
        });
        return Base64Url.EncodeToString(header) + "." + Base64Url.EncodeToString(payload);
    }

    private static readonly HashSet<string> ReservedClaims = new(StringComparer.Ordinal)
    {
        "iss", "aud", "sub", "iat", "nbf", "exp", "jti", SecurityClaims.Role, SecurityClaims.Tenant, SecurityClaims.AuthenticationMethod,
    };

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
/// by "name/version" (the JWT <c>kid</c>). Refreshed at once by this process's rotate and disable
/// endpoints, and otherwise at most <see cref="MaxAge"/> after the last refresh
/// (<see cref="EnsureFreshAsync"/>, called before every bearer validation), so a version disabled in the
/// vault by another instance or by hand stops validating without a restart.
/// </summary>
public sealed class VaultSigningKeys(IKeyVault vault, string signingKeyName, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private volatile Dictionary<string, SecurityKey> _keys = [];
    private long _refreshedAtTicks = long.MinValue;

    /// <summary>How long a refreshed key set is trusted before the vault is asked again (default one minute).</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Keys of an outside issuer (an identity provider, an operator's <see cref="OfflineTokenIssuer"/>) whose tokens also validate.</summary>
    public TrustedTokenKeys? Trusted { get; init; }

    /// <summary>The vault's enabled versions, then the trusted keys.</summary>
    public IReadOnlyCollection<SecurityKey> Keys => [.. _keys.Values, .. Trusted?.Keys.Values ?? []];

    /// <summary>Refreshes from the vault when the last refresh is older than <see cref="MaxAge"/> (one caller refreshes; the others wait for it).</summary>
    public async ValueTask EnsureFreshAsync(CancellationToken cancellationToken = default)
    {
        if (!IsStale()) return;
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            if (IsStale()) await RefreshCoreAsync(cancellationToken);
        }
        finally
        {
            _refresh.Release();
        }
    }

    private bool IsStale()
    {
        var at = Interlocked.Read(ref _refreshedAtTicks);
        return at == long.MinValue || _time.GetUtcNow().UtcTicks - at >= MaxAge.Ticks;
    }

    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _refresh.WaitAsync(cancellationToken);
        try
        {
            await RefreshCoreAsync(cancellationToken);
        }
        finally
        {
            _refresh.Release();
        }
    }

    private async Task RefreshCoreAsync(CancellationToken cancellationToken)
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
        Interlocked.Exchange(ref _refreshedAtTicks, _time.GetUtcNow().UtcTicks);
    }

    /// <summary>The key a token names in its header; none for an unknown kid (the token then fails).</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid) =>
        kid is null ? []
        : _keys.TryGetValue(kid, out var key) ? [key]
        : Trusted is not null && Trusted.Keys.TryGetValue(kid, out var trusted) ? [trusted]
        : [];
}

/// <summary>
/// Token validation: issuer, audience, lifetime (expiry, not-before, and no longer than
/// <see cref="TokenOptions.MaxLifetime"/>) and an ES256 signature by a known vault key; unsigned tokens refused.
/// </summary>
public static class TokenValidation
{
    /// <summary>Expiry and not-before only; the cap is checked first by <see cref="CappedLifetime"/>.</summary>
    private static TokenValidationParameters LifetimeOnly(TokenOptions options) => new()
    {
        ValidateLifetime = true,
        RequireExpirationTime = true,
        ClockSkew = options.ClockSkew,
    };

    /// <summary>
    /// Refuses a token whose validity (from not-before, or from now) is longer than the cap, then applies
    /// the library's expiry and not-before checks. A token signed by a vault key but valid for ten years
    /// (a leaked signing permission, a misconfigured issuer) is refused like an expired one.
    /// </summary>
    private static LifetimeValidator CappedLifetime(TokenOptions options, TimeProvider time)
    {
        var inner = LifetimeOnly(options);
        var cap = options.MaxLifetime + options.ClockSkew;
        return (notBefore, expires, token, _) =>
        {
            if (expires is { } exp)
            {
                var now = time.GetUtcNow().UtcDateTime;
                var from = notBefore is { } nbf && nbf < now ? nbf : now;
                if (exp - from > cap)
                    throw new SecurityTokenInvalidLifetimeException($"The token is valid for longer than the maximum lifetime of {options.MaxLifetime}.") { NotBefore = notBefore, Expires = exp };
            }
            Validators.ValidateLifetime(notBefore, expires, token, inner);
            return true;
        };
    }

    public static TokenValidationParameters CreateParameters(TokenOptions options, VaultSigningKeys keys, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        return new TokenValidationParameters
        {
            LifetimeValidator = CappedLifetime(options, time ?? TimeProvider.System),
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
