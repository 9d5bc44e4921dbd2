using Azure.Identity;
using Serverless.Security.Envelope;
using Serverless.Security.RateLimiting;

namespace Serverless.Security.Hosting;

/// <summary>Settings of the security module (<see cref="SecurityHosting.AddSecurityServices"/>).</summary>
public sealed class SecurityOptions
{
    public TokenOptions Tokens { get; set; } = new();

    /// <summary>Public keys of an outside issuer whose tokens validate beside the vault's (an identity provider, an operator's offline issuer).</summary>
    public TrustedTokenKeys? TrustedTokenKeys { get; set; }
    public RateLimitOptions RateLimits { get; set; } = new();

    /// <summary>When set, keys live in Azure Key Vault (DefaultAzureCredential); otherwise in the local keyring in the data directory.</summary>
    public Uri? AzureKeyVaultUri { get; set; }

    /// <summary>KEK that wraps checkpoint data keys.</summary>
    public string CheckpointKeyName { get; set; } = "checkpoints-kek";

    /// <summary>KEK that wraps the pseudonymization HMAC key.</summary>
    public string PseudonymizationKeyName { get; set; } = "pseudonymization-kek";

    public string AuditSigningKeyName { get; set; } = "audit-signing";

    /// <summary>Blob container whose objects are all envelope-encrypted (checkpoints, model versions).</summary>
    public string CheckpointContainer { get; set; } = "checkpoints";

    /// <summary>
    /// Containers whose every object is envelope-encrypted: <c>IBlobStoreProvider.GetContainer(name)</c>
    /// returns an <see cref="EncryptedBlobStore"/> for these, so checkpoints cannot be written in the clear
    /// by anyone. <see cref="CheckpointContainer"/> is always included.
    /// </summary>
    public HashSet<string> EncryptedContainers { get; } = new(StringComparer.Ordinal);

    /// <summary>Blob container the audit trail is exported to.</summary>
    public string AuditContainer { get; set; } = "audit";

    /// <summary>
    /// Blob container of the signed checkpoint heads (<see cref="AuditAnchors"/>), apart from the log and
    /// its export. In production give it its own storage account and credential, with a time-based
    /// immutability policy, so that write access to the audit database does not reach it.
    /// </summary>
    public string AuditAnchorContainer { get; set; } = "audit-anchors";

    /// <summary>Trust root for federation clients' certificates (mutual TLS); null disables the certificate scheme.</summary>
    public CertificateTrust? ClientCertificateTrust { get; set; }

    public ClientCertificateRegistry ClientCertificates { get; set; } = new();

    /// <summary>Kestrel's limit on any request body (functions may lower it with <see cref="RequestBodyLimitAttribute"/>); 64 MiB leaves room for encrypted batches.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;
}

/// <summary>The undecorated key vault (local keyring or Azure Key Vault) behind the audited <see cref="IKeyVault"/>.</summary>
public sealed record KeyVaultBackend(IKeyVault Vault);

/// <summary>The envelope-encrypted view of a blob container (checkpoints): writers get this, never the raw container.</summary>
public sealed class CheckpointStore(RawBlobStoreProvider raw, EnvelopeEncryptor encryptor, SecurityOptions options)
{
    /// <summary>The encrypted store of <see cref="SecurityOptions.CheckpointContainer"/>.</summary>
    public EncryptedBlobStore Store { get; } = new(raw.Provider.GetContainer(options.CheckpointContainer), encryptor);

    /// <summary>The raw container (ciphertext), for the compliance report and re-wrap bookkeeping.</summary>
    public IBlobStore Raw { get; } = raw.Provider.GetContainer(options.CheckpointContainer);
}

/// <summary>The host's own blob provider, before <see cref="EncryptingBlobStoreProvider"/> wraps it.</summary>
public sealed record RawBlobStoreProvider(IBlobStoreProvider Provider);

/// <summary>Hands out <see cref="EncryptedBlobStore"/>s for the configured containers and the plain store for the others.</summary>
public sealed class EncryptingBlobStoreProvider(IBlobStoreProvider inner, EnvelopeEncryptor encryptor, IReadOnlySet<string> encryptedContainers) : IBlobStoreProvider
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, IBlobStore> _encrypted = new(StringComparer.Ordinal);

    public IBlobStore GetContainer(string container) =>
        encryptedContainers.Contains(container)
            ? _encrypted.GetOrAdd(container, name => new EncryptedBlobStore(inner.GetContainer(name), encryptor))
            : inner.GetContainer(container);

    public string BackendName => inner.BackendName;
}

/// <summary>
/// The security layer's services, for the function app (which adds its own worker middleware and functions):
/// <see cref="IKeyVault"/> (local keyring or Azure Key Vault), <see cref="IAuditLog"/> (SQLite in the data
/// directory), <see cref="EnvelopeEncryptor"/> and <see cref="CheckpointStore"/>, <see cref="DevTokenIssuer"/>,
/// authentication (bearer + client certificates) and <see cref="AccessPolicy"/>.
/// </summary>
public static class SecurityHosting
{
    /// <summary>
    /// The security services without any function host's pieces (the isolated-worker app adds its own
    /// middleware and functions): needs a <see cref="DataDirectory"/> and, to encrypt containers, an
    /// <see cref="IBlobStoreProvider"/> registered first. Call <see cref="EnsureKeysAsync"/> before serving.
    /// </summary>
    public static SecurityOptions AddSecurityServices(this IServiceCollection services, Action<SecurityOptions>? configure = null)
    {
        var options = new SecurityOptions();
        configure?.Invoke(options);
        services.AddSingleton(options);

        // The backend signs the audit log's own checkpoints; everyone else gets the audited decorator (one entry per key use).
        services.AddHttpContextAccessor();
        services.AddSingleton(sp => new KeyVaultBackend(options.AzureKeyVaultUri is { } vaultUri
            ? new AzureKeyVaultClient(vaultUri, new DefaultAzureCredential(), time: sp.GetService<TimeProvider>())
            : LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = sp.GetRequiredService<DataDirectory>().Path }, sp.GetService<TimeProvider>())));
        services.AddSingleton<IAuditLog>(sp => SqliteAuditLog.OpenAsync(
                new AuditLogOptions { DatabasePath = Path.Combine(sp.GetRequiredService<DataDirectory>().Path, "audit.db"), SigningKeyName = options.AuditSigningKeyName },
                sp.GetRequiredService<KeyVaultBackend>().Vault, sp.GetService<TimeProvider>())
            .GetAwaiter().GetResult());
        services.AddSingleton<IKeyVault>(sp =>
        {
            var accessor = sp.GetRequiredService<Microsoft.AspNetCore.Http.IHttpContextAccessor>();
            return new AuditedKeyVault(sp.GetRequiredService<KeyVaultBackend>().Vault, sp.GetRequiredService<IAuditLog>(),
                () => accessor.HttpContext?.User.FindFirst(SecurityClaims.Subject)?.Value ?? "platform");
        });
        services.AddSingleton(sp => new EnvelopeEncryptor(sp.GetRequiredService<IKeyVault>(), new EnvelopeOptions { KeyName = options.CheckpointKeyName }));
        services.AddSingleton<CheckpointStore>();
        options.EncryptedContainers.Add(options.CheckpointContainer);
        if (services.LastOrDefault(d => d.ServiceType == typeof(IBlobStoreProvider)) is { } hostProvider)
        {
            services.Remove(hostProvider);
            services.AddSingleton(sp => new RawBlobStoreProvider((IBlobStoreProvider)(hostProvider.ImplementationInstance
                ?? hostProvider.ImplementationFactory?.Invoke(sp)
                ?? ActivatorUtilities.CreateInstance(sp, hostProvider.ImplementationType!))));
            services.AddSingleton<IBlobStoreProvider>(sp => new EncryptingBlobStoreProvider(
                sp.GetRequiredService<RawBlobStoreProvider>().Provider, sp.GetRequiredService<EnvelopeEncryptor>(), options.EncryptedContainers));
        }
        else
        {
            services.AddSingleton(sp => new RawBlobStoreProvider(sp.GetRequiredService<IBlobStoreProvider>()));
        }
        services.AddSingleton(sp => new DevTokenIssuer(sp.GetRequiredService<IKeyVault>(), options.Tokens, sp.GetService<TimeProvider>()));
        services.AddSingleton(sp => new VaultSigningKeys(sp.GetRequiredService<IKeyVault>(), options.Tokens.SigningKeyName, sp.GetService<TimeProvider>())
        {
            Trusted = options.TrustedTokenKeys,
        });

        services.AddServerlessAuthentication(options.Tokens, signingKeys: null, options.ClientCertificateTrust, options.ClientCertificates);
        services.AddServerlessAuthorization(denyUndeclaredEndpoints: false);
        services.AddSingleton(sp => new FunctionRateLimiter(options.RateLimits));
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(k => k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        return options;
    }

    /// <summary>Creates the keys that are missing, loads the token validation keys and opens the audit log.</summary>
    public static async Task EnsureKeysAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var options = services.GetRequiredService<SecurityOptions>();
        var vault = services.GetRequiredService<IKeyVault>();
        foreach (var (name, kind) in new[] { (options.CheckpointKeyName, KeyKind.Wrapping), (options.PseudonymizationKeyName, KeyKind.Wrapping),
                     (options.Tokens.SigningKeyName, KeyKind.Signing), (options.AuditSigningKeyName, KeyKind.Signing) })
        {
            if (await vault.GetCurrentVersionAsync(name, cancellationToken) is null) await vault.CreateKeyAsync(name, kind, cancellationToken);
        }
        await services.GetRequiredService<VaultSigningKeys>().RefreshAsync(cancellationToken);
        services.GetRequiredService<IAuditLog>();
    }
}
