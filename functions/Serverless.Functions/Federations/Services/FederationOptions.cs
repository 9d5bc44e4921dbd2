namespace Serverless.Functions.Federations.Services;

/// <summary>Settings of the federations module (<see cref="FederationServiceCollectionExtensions.AddFederations"/>).</summary>
public sealed class FederationOptions
{
    /// <summary>The app setting of <see cref="RequireClientCertificate"/>: <c>required</c>, or <c>off</c> (the default).</summary>
    public const string ClientCertificateSetting = "SERVERLESS_FEDERATION_CLIENT_CERTIFICATE";

    /// <summary>The app setting of <see cref="CaCertificatePath"/>.</summary>
    public const string CaCertificateSetting = "SERVERLESS_FEDERATION_CA_CERTIFICATE";

    /// <summary>Reads <see cref="ClientCertificateSetting"/>; any other value than the two stops the app at start, with the setting named.</summary>
    public static bool ParseClientCertificateSetting(string? value) => value switch
    {
        null or "" or "off" => false,
        "required" => true,
        _ => throw new InvalidOperationException($"App setting {ClientCertificateSetting} must be 'required' or 'off'."),
    };

    /// <summary>
    /// PEM of the CA whose client certificates may enroll (app setting <see cref="CaCertificateSetting"/>); default
    /// <c>&lt;data&gt;/dev-ca/ca.pem</c>. An operator keeps the CA's key off the server and gives the app only this PEM.
    /// </summary>
    public string? CaCertificatePath { get; set; }

    /// <summary>
    /// Federation clients must present their enrolled certificate over mutual TLS on every round call, as
    /// well as their bearer token (app setting <c>SERVERLESS_FEDERATION_CLIENT_CERTIFICATE=required</c>; the
    /// host or the front end forwards the certificate as X-ARR-ClientCert). Off, the token alone is checked.
    /// </summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>How long an enrollment nonce stays valid.</summary>
    public TimeSpan NonceLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Lifetime of a client's bearer token (at most the token issuer's maximum, one day).</summary>
    public TimeSpan ClientTokenLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Largest accepted phase message (masked inputs of big models).</summary>
    public long MaxMessageBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest accepted hold-out CSV.</summary>
    public long MaxHoldOutBytes { get; set; } = 64L * 1024 * 1024;
}
