using Serverless.Client.Tests.Commands;
using System.Security.Cryptography.X509Certificates;
using Serverless.Security.Identity;
using Serverless.Security.Keys;

namespace Serverless.Client.Tests.Admin;

/// <summary><c>admin issuer | token | ca</c>: what they write, and that the app trusts exactly what they publish.</summary>
public sealed class AdminCommandsTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task Token_issue_prints_a_token_that_validates_against_the_issuers_published_keys_only()
    {
        using var dir = new TempDir();
        var issuerDir = dir.Sub("issuer");
        var create = await CliRunner.RunAsync("admin", "issuer", "create", "--out", issuerDir);
        Assert.True(create.ExitCode == 0, create.Error);
        Assert.Contains("SERVERLESS_TRUSTED_TOKEN_KEYS=", create.Out);
        var again = await CliRunner.RunAsync("admin", "issuer", "create", "--out", issuerDir);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("refusing to overwrite", Assert.Single(again.ErrorLines));
        if (!OperatingSystem.IsWindows()) Assert.Equal(OwnerOnly, File.GetUnixFileMode(Path.Combine(issuerDir, OfflineTokenIssuer.KeyFileName)));

        var run = await CliRunner.RunAsync("admin", "token", "issue", "--issuer", issuerDir, "--subject", "clin-7", "--role", "clinician", "--role", "auditor",
            "--tenant", "hospital-a", "--lifetime", "00:20:00");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Error);
        var token = run.Out.Trim();
        Assert.Equal(3, token.Split('.').Length);

        // What the app does with SERVERLESS_TRUSTED_TOKEN_KEYS: the published JWK Set validates the token beside the vault's keys.
        using var vaultDir = new TempDir();
        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = vaultDir.Path });
        await keyring.CreateKeyAsync(new TokenOptions().SigningKeyName, KeyKind.Signing); // the app's own key, as at its start
        var trusted = TrustedTokenKeys.Load(Path.Combine(issuerDir, OfflineTokenIssuer.JwksFileName));
        var keys = new VaultSigningKeys(keyring, new TokenOptions().SigningKeyName) { Trusted = trusted };
        await keys.RefreshAsync();
        var (principal, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), keys));
        Assert.Null(error);
        Assert.Equal("clin-7", principal!.FindFirst(SecurityClaims.Subject)!.Value);
        Assert.Equal(["auditor", "clinician"], principal.FindAll(SecurityClaims.Role).Select(c => c.Value).Order(StringComparer.Ordinal));
        Assert.Equal("hospital-a", principal.FindFirst(SecurityClaims.Tenant)!.Value);
        var expires = DateTimeOffset.FromUnixTimeSeconds(long.Parse(principal.FindFirst("exp")!.Value));
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(18), TimeSpan.FromMinutes(21));

        // Without the trust file, or with another issuer's, the same token is refused.
        var untrusting = new VaultSigningKeys(keyring, new TokenOptions().SigningKeyName);
        await untrusting.RefreshAsync();
        Assert.NotNull((await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), untrusting))).Error);
        var otherDir = dir.Sub("other-issuer");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "issuer", "create", "--out", otherDir)).ExitCode);
        var other = new VaultSigningKeys(keyring, new TokenOptions().SigningKeyName) { Trusted = TrustedTokenKeys.Load(Path.Combine(otherDir, OfflineTokenIssuer.JwksFileName)) };
        await other.RefreshAsync();
        Assert.NotNull((await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), other))).Error);
    }

    [Theory]
    [InlineData("--role", "superuser")]            // unknown role
    [InlineData("--role", "clinician")]            // tenant-scoped role without --tenant
    [InlineData("--lifetime", "30.00:00:00")]      // beyond the one-day maximum
    [InlineData("--issuer", "nowhere")]            // no issuer in that directory
    public async Task Token_issue_refuses_bad_input_with_one_line(string option, string value)
    {
        using var dir = new TempDir();
        var issuerDir = dir.Sub("issuer");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "issuer", "create", "--out", issuerDir)).ExitCode);
        var args = new List<string> { "admin", "token", "issue", "--subject", "s" };
        if (option != "--role") args.AddRange(["--role", "operator"]);
        args.AddRange(option == "--issuer" ? ["--issuer", dir.Sub(value)] : ["--issuer", issuerDir, option, value]);
        var run = await CliRunner.RunAsync([.. args]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Equal("", run.Out);
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.DoesNotContain("unexpected", line);
        if (value == "superuser") Assert.Contains("unknown role 'superuser'", line);
    }

    [Fact]
    public async Task Token_issue_refuses_an_issuer_key_readable_by_others()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = new TempDir();
        var issuerDir = dir.Sub("issuer");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "issuer", "create", "--out", issuerDir)).ExitCode);
        File.SetUnixFileMode(Path.Combine(issuerDir, OfflineTokenIssuer.KeyFileName), OwnerOnly | UnixFileMode.GroupRead);
        var run = await CliRunner.RunAsync("admin", "token", "issue", "--issuer", issuerDir, "--subject", "s", "--role", "operator");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("wider than 0600", Assert.Single(run.ErrorLines));
    }

    [Fact]
    public async Task Ca_commands_make_certificates_that_chain_to_the_CA_with_owner_only_keys()
    {
        using var dir = new TempDir();
        var caDir = dir.Sub("ca");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "create", "--out", caDir)).ExitCode);
        var again = await CliRunner.RunAsync("admin", "ca", "create", "--out", caDir);
        Assert.Equal(1, again.ExitCode);
        Assert.Single(again.ErrorLines);

        var server = await CliRunner.RunAsync("admin", "ca", "server", "--ca", caDir, "--out", dir.Sub("server"), "--dns", "localhost", "--dns", "fl.local", "--ip", "127.0.0.1");
        Assert.Equal(0, server.ExitCode);
        var client = await CliRunner.RunAsync("admin", "ca", "client", "--ca", caDir, "--client-id", "hospital-a-agent", "--out", dir.Sub("clients"));
        Assert.Equal(0, client.ExitCode);

        using var root = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(caDir, "ca.pem"));
        using var clientCert = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir.Sub("clients"), "hospital-a-agent.pfx"), null);
        using var serverCert = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir.Sub("server"), "server.pfx"), null);
        Assert.True(clientCert.HasPrivateKey);
        Assert.True(Chains(clientCert, root, DevCertificateAuthority.ClientAuthOid));
        Assert.True(Chains(serverCert, root, DevCertificateAuthority.ServerAuthOid));
        Assert.False(Chains(clientCert, root, DevCertificateAuthority.ServerAuthOid)); // a client certificate is no server certificate
        var san = serverCert.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["localhost", "fl.local"], san.EnumerateDnsNames());
        Assert.Equal([System.Net.IPAddress.Loopback], san.EnumerateIPAddresses());
        Assert.Contains(ClientCertificateRegistry.Thumbprint(clientCert), client.Out);

        // The PEM key matches the PEM certificate.
        using var fromPem = X509Certificate2.CreateFromPemFile(Path.Combine(dir.Sub("clients"), "hospital-a-agent.pem"), Path.Combine(dir.Sub("clients"), "hospital-a-agent.key"));
        Assert.Equal(clientCert.Thumbprint, fromPem.Thumbprint);
        Assert.True(fromPem.HasPrivateKey);

        // A certificate from another CA does not chain to this one.
        var otherCa = dir.Sub("other-ca");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "create", "--out", otherCa)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "client", "--ca", otherCa, "--client-id", "intruder", "--out", dir.Sub("intruder"))).ExitCode);
        using var intruder = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir.Sub("intruder"), "intruder.pfx"), null);
        Assert.False(Chains(intruder, root, DevCertificateAuthority.ClientAuthOid));

        if (!OperatingSystem.IsWindows())
        {
            foreach (var key in new[] { "ca/ca.pfx", "ca/ca.key", "server/server.pfx", "server/server.key", "clients/hospital-a-agent.pfx", "clients/hospital-a-agent.key" })
                Assert.Equal(OwnerOnly, File.GetUnixFileMode(dir.Sub(key)));

            // A CA key readable by others is refused.
            File.SetUnixFileMode(Path.Combine(caDir, "ca.pfx"), OwnerOnly | UnixFileMode.OtherRead);
            var refused = await CliRunner.RunAsync("admin", "ca", "client", "--ca", caDir, "--client-id", "late", "--out", dir.Sub("clients"));
            Assert.Equal(1, refused.ExitCode);
            var refusal = Assert.Single(refused.ErrorLines);
            Assert.Contains("wider than 0600", refusal);
            Assert.DoesNotContain("unexpected", refusal);
        }

        var bad = await CliRunner.RunAsync("admin", "ca", "client", "--ca", otherCa, "--client-id", "../escape", "--out", dir.Sub("clients"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Single(bad.ErrorLines);
    }

    private static bool Chains(X509Certificate2 leaf, X509Certificate2 root, string usageOid)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid(usageOid));
        return chain.Build(leaf) && chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span);
    }
}
