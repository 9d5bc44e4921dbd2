using System.Security.Cryptography.X509Certificates;
using Microsoft.Data.Sqlite;
using Serverless.Security.Audit;
using Serverless.Security.Identity;
using Serverless.Security.Keys;

namespace Serverless.Functions.Tests.Client.Commands;

public sealed class DevCommandsTests
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public async Task Token_issue_prints_a_token_the_same_data_directory_validates()
    {
        using var dir = new TempDir();
        var run = await CliRunner.RunAsync("token", "issue", "--data-dir", dir.Path, "--subject", "clin-7", "--role", "clinician", "--role", "auditor",
            "--tenant", "hospital-a", "--lifetime", "00:20:00");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Error);
        var token = run.Out.Trim();
        Assert.Equal(3, token.Split('.').Length);

        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dir.Path });
        var keys = new VaultSigningKeys(keyring, new TokenOptions().SigningKeyName);
        await keys.RefreshAsync();
        var (principal, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), keys));
        Assert.Null(error);
        Assert.Equal("clin-7", principal!.FindFirst(SecurityClaims.Subject)!.Value);
        Assert.Equal(["auditor", "clinician"], principal.FindAll(SecurityClaims.Role).Select(c => c.Value).Order(StringComparer.Ordinal));
        Assert.Equal("hospital-a", principal.FindFirst(SecurityClaims.Tenant)!.Value);
        var expires = DateTimeOffset.FromUnixTimeSeconds(long.Parse(principal.FindFirst("exp")!.Value));
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(18), TimeSpan.FromMinutes(21));

        // A token from another data directory (another signing key) does not validate here.
        using var other = new TempDir();
        var foreign = await CliRunner.RunAsync("token", "issue", "--data-dir", other.Path, "--subject", "x", "--role", "operator");
        Assert.Equal(0, foreign.ExitCode);
        var (_, foreignError) = await TokenValidation.ValidateAsync(foreign.Out.Trim(), TokenValidation.CreateParameters(new TokenOptions(), keys));
        Assert.NotNull(foreignError);
    }

    [Theory]
    [InlineData("--role", "superuser")]            // unknown role
    [InlineData("--role", "clinician")]            // tenant-scoped role without --tenant
    [InlineData("--lifetime", "30.00:00:00")]      // beyond the one-day maximum
    public async Task Token_issue_refuses_bad_input_with_one_line(string option, string value)
    {
        using var dir = new TempDir();
        var args = new List<string> { "token", "issue", "--data-dir", dir.Path, "--subject", "s" };
        if (option != "--role") args.AddRange(["--role", "operator"]);
        args.AddRange([option, value]);
        var run = await CliRunner.RunAsync([.. args]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Equal("", run.Out);
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("error: ", line);
        if (value == "superuser") Assert.Contains("unknown role 'superuser'", line);
    }

    [Fact]
    public async Task Ca_commands_make_certificates_that_chain_to_the_CA_with_owner_only_keys()
    {
        using var dir = new TempDir();
        var caDir = dir.Sub("ca");
        Assert.Equal(0, (await CliRunner.RunAsync("ca", "create", "--out", caDir)).ExitCode);
        var again = await CliRunner.RunAsync("ca", "create", "--out", caDir);
        Assert.Equal(1, again.ExitCode);
        Assert.Single(again.ErrorLines);

        var server = await CliRunner.RunAsync("ca", "server", "--ca", caDir, "--out", dir.Sub("server"), "--dns", "localhost", "--dns", "fl.local", "--ip", "127.0.0.1");
        Assert.Equal(0, server.ExitCode);
        var client = await CliRunner.RunAsync("ca", "client", "--ca", caDir, "--client-id", "hospital-a-agent", "--out", dir.Sub("clients"));
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
        Assert.Equal(0, (await CliRunner.RunAsync("ca", "create", "--out", otherCa)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("ca", "client", "--ca", otherCa, "--client-id", "intruder", "--out", dir.Sub("intruder"))).ExitCode);
        using var intruder = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir.Sub("intruder"), "intruder.pfx"), null);
        Assert.False(Chains(intruder, root, DevCertificateAuthority.ClientAuthOid));

        if (!OperatingSystem.IsWindows())
        {
            foreach (var key in new[] { "ca/ca.pfx", "ca/ca.key", "server/server.pfx", "server/server.key", "clients/hospital-a-agent.pfx", "clients/hospital-a-agent.key" })
                Assert.Equal(OwnerOnly, File.GetUnixFileMode(dir.Sub(key)));

            // A CA key readable by others is refused.
            File.SetUnixFileMode(Path.Combine(caDir, "ca.pfx"), OwnerOnly | UnixFileMode.OtherRead);
            var refused = await CliRunner.RunAsync("ca", "client", "--ca", caDir, "--client-id", "late", "--out", dir.Sub("clients"));
            Assert.Equal(1, refused.ExitCode);
            var refusal = Assert.Single(refused.ErrorLines);
            Assert.Contains("wider than 0600", refusal);
            Assert.DoesNotContain("unexpected", refusal);
        }

        var bad = await CliRunner.RunAsync("ca", "client", "--ca", otherCa, "--client-id", "../escape", "--out", dir.Sub("clients"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Single(bad.ErrorLines);
    }

    [Fact]
    public async Task Audit_verify_exits_0_on_an_intact_log_and_1_naming_a_modified_entry()
    {
        using var dir = new TempDir();
        var db = Path.Combine(dir.Path, "audit.db");
        using (var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dir.Path }))
        await using (var log = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = db, CheckpointEvery = 3 }, keyring))
        {
            for (var i = 1; i <= 7; i++) await log.AppendAsync(new AuditEvent($"op-{i}", AuditActions.RoundStart, $"federation/f{i}", AuditOutcome.Success));
        }

        var intact = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir.Path);
        Assert.Equal(0, intact.ExitCode);
        Assert.StartsWith("audit chain intact: 7 entries", intact.Out);
        Assert.Equal("", intact.Error);

        SqliteConnection.ClearAllPools();
        using (var connection = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            // What an attacker holding the file does: drop the append-only trigger, then edit an entry.
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "DROP TRIGGER IF EXISTS audit_entries_no_update";
            command.ExecuteNonQuery();
            command.CommandText = "UPDATE audit_entries SET actor = 'someone-else' WHERE seq = 5";
            Assert.Equal(1, command.ExecuteNonQuery());
        }

        var broken = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir.Path);
        Assert.Equal(1, broken.ExitCode);
        Assert.StartsWith("audit chain BROKEN", broken.Out);
        Assert.Contains($"first broken link at sequence 5 ({AuditBreakKind.EntryModified})", broken.Out);

        var missing = await CliRunner.RunAsync("audit", "verify", "--data-dir", dir.Sub("nowhere"));
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("error: ", Assert.Single(missing.ErrorLines));
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
