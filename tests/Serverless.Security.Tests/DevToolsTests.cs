using System.Security.Cryptography.X509Certificates;
using Microsoft.Data.Sqlite;
using Serverless.Security.Audit;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests;

public sealed class DevToolsTests
{
    [Fact]
    public async Task A_dev_token_validates_against_the_same_data_directory()
    {
        using var dir = new TempDirectory();
        var token = await DevTools.IssueTokenAsync(dir.Path, "op-1", ["operator"], "consortium");
        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dir.Path });
        var keys = new VaultSigningKeys(keyring, new TokenOptions().SigningKeyName);
        await keys.RefreshAsync();
        var (principal, error) = await TokenValidation.ValidateAsync(token, TokenValidation.CreateParameters(new TokenOptions(), keys));
        Assert.Null(error);
        Assert.Equal("op-1", principal!.FindFirst("sub")!.Value);
    }

    [Fact]
    public void The_dev_CA_commands_make_a_chain_the_CA_trusts()
    {
        using var dir = new TempDirectory();
        var caPath = DevTools.CreateCertificateAuthority(dir.Path);
        Assert.Throws<InvalidOperationException>(() => DevTools.CreateCertificateAuthority(dir.Path));
        var serverPath = DevTools.IssueServerCertificate(dir.Path, "serverless.local", "10.0.0.5");
        var (clientPath, thumbprint) = DevTools.IssueClientCertificate(dir.Path, "hospital-a-agent");
        using var ca = DevCertificateAuthority.Load(caPath);
        using var server = X509CertificateLoader.LoadPkcs12FromFile(serverPath, null);
        using var client = X509CertificateLoader.LoadPkcs12FromFile(clientPath, null);
        Assert.True(ca.Trust.IsTrusted(server, DevCertificateAuthority.ServerAuthOid, out _));
        Assert.True(ca.Trust.IsTrusted(client, DevCertificateAuthority.ClientAuthOid, out _));
        Assert.Equal(ClientCertificateRegistry.Thumbprint(client), thumbprint);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(clientPath));
        Assert.Throws<ArgumentException>(() => DevTools.IssueClientCertificate(dir.Path, "../escape"));
    }

    [Fact]
    public async Task Audit_verification_over_a_data_directory()
    {
        using var dir = new TempDirectory();
        using (var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dir.Path }))
        await using (var log = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = dir.File("audit.db"), CheckpointEvery = 2 }, keyring))
        {
            for (var i = 0; i < 5; i++) await log.AppendAsync(new AuditEvent("op", AuditActions.RoundStart, $"federation/{i}", AuditOutcome.Success));
        }
        var report = await DevTools.VerifyAuditAsync(dir.Path);
        Assert.True(report.Intact, report.ToText());
        Assert.Equal(5, report.EntriesChecked);
        Assert.Equal(2, report.CheckpointsChecked);
        SqliteConnection.ClearAllPools();
        await Assert.ThrowsAsync<FileNotFoundException>(() => DevTools.VerifyAuditAsync(Path.Combine(dir.Path, "nope")));
    }
}
