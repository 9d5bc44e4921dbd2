using Microsoft.Data.Sqlite;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;
using Serverless.Security.Compliance;
using Serverless.Security.Envelope;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Compliance;

public sealed class ComplianceReportTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    [Fact]
    public async Task Passes_when_everything_holds_and_names_each_violation_otherwise()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = _dir.Path, MasterKeyEnvironmentVariable = "SERVERLESS_TEST_UNSET_X" }, clock);
        await keyring.CreateKeyAsync("checkpoints-kek", KeyKind.Wrapping);
        await keyring.CreateKeyAsync("token-signing", KeyKind.Signing);
        await using var audit = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = _dir.File("a.db"), CheckpointEvery = 1 }, keyring, clock);
        await audit.AppendAsync(new AuditEvent("op", AuditActions.RoundStart, "federation/f", AuditOutcome.Success));
        var raw = new MemoryBlobStore();
        var store = new EncryptedBlobStore(raw, new EnvelopeEncryptor(keyring));
        await store.PutAsync("ckpt/1", new MemoryStream([1, 2, 3]));

        var reporter = new ComplianceReporter(keyring, audit, RolePermissionTable.Default, clock);
        var good = await reporter.BuildAsync(raw);
        Assert.True(good.Compliant, string.Join("; ", good.Checks.Where(c => !c.Passed).Select(c => c.Rule + ": " + c.Finding)));
        Assert.Equal(RolePermissionTable.Default.Roles.Count, good.RoleGrants.Count);

        raw.SetRaw("ckpt/plain", "not encrypted"u8.ToArray());
        clock.Advance(TimeSpan.FromDays(120));
        var bad = await reporter.BuildAsync(raw);
        Assert.False(bad.Compliant);
        var failed = bad.Checks.Where(c => !c.Passed).ToDictionary(c => c.Rule, c => c.Finding);
        Assert.Contains("ckpt/plain", failed["encryption at rest (envelope-encrypted checkpoints)"]);
        Assert.Contains("120.0 days old", failed["key 'checkpoints-kek' rotated within 90 days"]);
        Assert.True(failed.ContainsKey("key 'token-signing' rotated within 90 days"));

        await keyring.RotateKeyAsync("checkpoints-kek");
        Assert.DoesNotContain(( await reporter.BuildAsync(raw)).Checks, c => c.Rule.StartsWith("key 'checkpoints-kek'") && !c.Passed);
    }
}
