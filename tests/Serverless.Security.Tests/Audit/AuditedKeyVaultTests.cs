using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Serverless.Security.Audit;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Audit;

public sealed class AuditedKeyVaultTests(KeyringFixture keys) : IClassFixture<KeyringFixture>, IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    [Fact]
    public async Task Every_key_use_and_management_action_writes_one_entry_including_failures()
    {
        await using var log = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = _dir.File("a.db"), CheckpointEvery = 0 }, keys.Keyring);
        var vault = new AuditedKeyVault(keys.Keyring, log, () => "alice");
        var name = "kek-" + Guid.NewGuid().ToString("N")[..8];
        await vault.CreateKeyAsync(name, KeyKind.Wrapping);
        var wrapped = await vault.WrapKeyAsync(name, RandomNumberGenerator.GetBytes(32));
        await vault.UnwrapKeyAsync(wrapped);
        var v2 = await vault.RotateKeyAsync(name);
        await Assert.ThrowsAnyAsync<CryptographicException>(() => vault.UnwrapKeyAsync(wrapped with { Ciphertext = new byte[60] }));
        await vault.DisableVersionAsync(wrapped.KeyId);
        await vault.ListVersionsAsync(name); // metadata reads are not audited

        var entries = new List<AuditEntry>();
        await foreach (var e in log.ReadAsync()) entries.Add(e);
        Assert.Equal(
            [("key.create", AuditOutcome.Success), ("key.use", AuditOutcome.Success), ("key.use", AuditOutcome.Success),
             ("key.rotate", AuditOutcome.Success), ("key.use", AuditOutcome.Failure), ("key.disable", AuditOutcome.Success)],
            entries.Select(e => (e.Action, e.Outcome)));
        Assert.All(entries, e => Assert.Equal("alice", e.Actor));
        Assert.Equal($"wrap (version {wrapped.KeyId.Version})", entries[1].Detail);
        Assert.Equal($"key/{name}", entries[3].Resource);
        Assert.Contains(v2.Id.Version, entries[3].Detail);
    }
}
