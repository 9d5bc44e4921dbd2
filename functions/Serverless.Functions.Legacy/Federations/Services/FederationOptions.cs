namespace Serverless.Functions.Federations.Services;

/// <summary>Settings of the federations module (<see cref="FederationServiceCollectionExtensions.AddFederations"/>).</summary>
public sealed class FederationOptions
{
    /// <summary>PEM of the CA whose client certificates may enroll; default <c>&lt;data&gt;/dev-ca/ca.pem</c> (what <c>serverless-client ca create --out &lt;data&gt;/dev-ca</c> writes).</summary>
    public string? CaCertificatePath { get; set; }

    /// <summary>How long an enrollment nonce stays valid.</summary>
    public TimeSpan NonceLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Lifetime of a client's bearer token (at most the token issuer's maximum, one day).</summary>
    public TimeSpan ClientTokenLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Largest accepted phase message (masked inputs of big models).</summary>
    public long MaxMessageBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest accepted hold-out CSV.</summary>
    public long MaxHoldOutBytes { get; set; } = 64L * 1024 * 1024;
}
