using Microsoft.AspNetCore.Hosting;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serverless.Security.Hosting;

namespace Serverless.Functions.Hosting;

/// <summary>
/// The security layer in the worker: key vault (Azure Key Vault when the app setting
/// <c>SERVERLESS_KEY_VAULT_URI</c> is set, else the local keyring in the data directory), audit log,
/// envelope encryption of the encrypted containers, tokens, access policy, and
/// <see cref="AuthorizationMiddleware"/> in front of every HTTP function, and the forwarded TLS client
/// certificate (<see cref="ForwardedClientCertificate"/>); compressed request bodies are decompressed before any
/// reader bounds them (<see cref="CompressedRequestBodies"/>).
/// </summary>
internal static class AppSecurity
{
    public const string KeyVaultSetting = "SERVERLESS_KEY_VAULT_URI";

    /// <summary>Path of a JWK Set of ES256 public keys whose tokens the app accepts beside its own (docs/security.md, "Tokens").</summary>
    public const string TrustedTokenKeysSetting = "SERVERLESS_TRUSTED_TOKEN_KEYS";

    public static FunctionsApplicationBuilder AddAppSecurity(this FunctionsApplicationBuilder builder, Action<SecurityOptions>? configure = null)
    {
        var vault = builder.Configuration[KeyVaultSetting];
        var trusted = LoadTrustedTokenKeys(builder.Configuration[TrustedTokenKeysSetting]);
        builder.Services.AddSecurityServices(options =>
        {
            if (vault is { Length: > 0 }) options.AzureKeyVaultUri = new Uri(vault, UriKind.Absolute);
            options.TrustedTokenKeys = trusted;
            configure?.Invoke(options);
        });
        // First of the hosted services: the keys exist before the worker connects to the host and takes invocations.
        builder.Services.Insert(0, ServiceDescriptor.Singleton<IHostedService, SecurityStartup>());
        builder.Services.AddCertificateForwarding(o => o.CertificateHeader = ForwardedClientCertificate.Header);
        builder.Services.AddSingleton<IStartupFilter, ForwardedClientCertificate>();
        builder.Services.AddRequestDecompression();
        builder.Services.AddSingleton<IStartupFilter, CompressedRequestBodies>();
        builder.UseMiddleware<AuthorizationMiddleware>();
        return builder;
    }

    /// <summary>Reads the trust file once at start; a missing or bad file stops the app with the setting named.</summary>
    internal static TrustedTokenKeys? LoadTrustedTokenKeys(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) return null;
        try
        {
            return TrustedTokenKeys.Load(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new InvalidOperationException($"App setting {TrustedTokenKeysSetting}: {e.Message}", e);
        }
    }
}
