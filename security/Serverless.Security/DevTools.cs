using System.Net;
using Serverless.Security.Audit;
using Serverless.Security.Identity;

namespace Serverless.Security;

/// <summary>
/// One-call operations for command-line tools (<c>serverless-client token issue</c>, <c>... ca create</c>,
/// <c>... audit verify</c>) over a data directory, with the embedded defaults the host uses: the local
/// keyring (<c>keyring.bin</c>, <c>master.key</c>), <c>audit.db</c>, and the dev CA in <c>dev-ca/</c>.
/// Each returns what a CLI prints; errors are exceptions with one-line messages.
/// </summary>
public static class DevTools
{
    /// <summary>Issues a development bearer token signed by the data directory's token-signing key (created if missing).</summary>
    public static async Task<string> IssueTokenAsync(string dataDirectory, string subject, IReadOnlyList<string> roles, string? tenant = null,
        TimeSpan? lifetime = null, TokenOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dataDirectory });
        var issuer = new DevTokenIssuer(keyring, options);
        await issuer.EnsureSigningKeyAsync(cancellationToken);
        return await issuer.IssueAsync(new TokenRequest(subject, roles, tenant, lifetime), cancellationToken);
    }

    /// <summary>Creates <c>dev-ca/ca.pfx</c> (0600) and <c>dev-ca/ca.pem</c>; refuses to overwrite an existing CA.</summary>
    public static string CreateCertificateAuthority(string dataDirectory)
    {
        var path = CaPath(dataDirectory);
        if (File.Exists(path)) throw new InvalidOperationException($"A dev CA already exists at '{path}'.");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var ca = DevCertificateAuthority.Create();
        ca.Save(path);
        return path;
    }

    /// <summary>Issues a server certificate (localhost, 127.0.0.1 and <paramref name="extraNames"/>) as <c>dev-ca/server.pfx</c>.</summary>
    public static string IssueServerCertificate(string dataDirectory, params string[] extraNames)
    {
        using var ca = DevCertificateAuthority.Load(CaPath(dataDirectory));
        var names = new List<string> { "localhost" };
        var addresses = new List<IPAddress> { IPAddress.Loopback };
        foreach (var name in extraNames)
        {
            if (IPAddress.TryParse(name, out var ip)) addresses.Add(ip);
            else names.Add(name);
        }
        using var certificate = ca.IssueServerCertificate(names, addresses);
        var path = Path.Combine(Path.GetDirectoryName(CaPath(dataDirectory))!, "server.pfx");
        LocalKeyring.WriteOwnerOnlyAtomically(path, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12));
        return path;
    }

    /// <summary>Issues a client certificate for <paramref name="clientId"/> as <c>dev-ca/clients/&lt;id&gt;.pfx</c>; returns the path and the SHA-256 thumbprint to register.</summary>
    public static (string Path, string Thumbprint) IssueClientCertificate(string dataDirectory, string clientId)
    {
        if (clientId.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || clientId.Contains("..")) throw new ArgumentException($"Invalid client id '{clientId}'.", nameof(clientId));
        using var ca = DevCertificateAuthority.Load(CaPath(dataDirectory));
        using var certificate = ca.IssueClientCertificate(clientId);
        var directory = Path.Combine(Path.GetDirectoryName(CaPath(dataDirectory))!, "clients");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, clientId + ".pfx");
        LocalKeyring.WriteOwnerOnlyAtomically(path, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12));
        return (path, ClientCertificateRegistry.Thumbprint(certificate));
    }

    /// <summary>Verifies <c>audit.db</c> in the data directory against its signed checkpoints.</summary>
    public static async Task<AuditVerificationReport> VerifyAuditAsync(string dataDirectory, string signingKeyName = "audit-signing", CancellationToken cancellationToken = default)
    {
        var database = Path.Combine(dataDirectory, "audit.db");
        if (!File.Exists(database)) throw new FileNotFoundException($"No audit log at '{database}'.");
        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dataDirectory });
        await using var log = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = database, SigningKeyName = signingKeyName, CheckpointEvery = 0 }, keyring, cancellationToken: cancellationToken);
        return await AuditVerifier.VerifyAsync(log, keyring, signingKeyName, cancellationToken);
    }

    private static string CaPath(string dataDirectory) => Path.Combine(dataDirectory, "dev-ca", "ca.pfx");
}
