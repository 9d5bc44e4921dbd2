using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Serverless.Security.Audit;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Audit;

public sealed class AuditLogTests(KeyringFixture keys) : IClassFixture<KeyringFixture>, IDisposable
{
    private readonly TempDirectory _dir = new();
    private string DbPath => _dir.File("audit.db");
    private readonly string _signingKey = "audit-" + Guid.NewGuid().ToString("N")[..8];

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    private Task<SqliteAuditLog> OpenAsync(int checkpointEvery = 10, TimeProvider? time = null) =>
        SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = DbPath, SigningKeyName = _signingKey, CheckpointEvery = checkpointEvery }, keys.Keyring, time);

    private static AuditEvent Event(int i) => new($"user-{i % 3}", i % 2 == 0 ? AuditActions.RoundStart : AuditActions.KeyUse, $"federation/f{i}", AuditOutcome.Success, $"req-{i}", $"detail {i}");

    private async Task<SqliteAuditLog> FilledAsync(int count, int checkpointEvery = 10)
    {
        var log = await OpenAsync(checkpointEvery);
        for (var i = 1; i <= count; i++) await log.AppendAsync(Event(i));
        return log;
    }

    private Task<AuditVerificationReport> VerifyAsync(IAuditLog log) => AuditVerifier.VerifyAsync(log, keys.Keyring, _signingKey);

    /// <summary>What an attacker with the database file does: drop the append-only triggers and edit.</summary>
    private void Tamper(params string[] statements)
    {
        using var connection = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        connection.Open();
        foreach (var sql in (string[])["DROP TRIGGER IF EXISTS audit_entries_no_update", "DROP TRIGGER IF EXISTS audit_entries_no_delete",
                     "DROP TRIGGER IF EXISTS audit_checkpoints_no_update", "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete", .. statements])
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.ExecuteNonQuery();
        }
    }

    private static byte[] Rehash(AuditEntry e, long sequence, byte[] previous) =>
        AuditHashing.ComputeHash(sequence, e.Timestamp, e.Actor, e.Action, e.Resource, e.Outcome, e.RequestId, e.Detail, previous);

    [Fact]
    public async Task Entries_chain_by_hash_and_the_chain_continues_after_reopen()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 22, 8, 0, 0, TimeSpan.Zero));
        await using (var log = await OpenAsync(time: clock))
        {
            var first = await log.AppendAsync(new AuditEvent("op", AuditActions.RoundStart, "federation/f1", AuditOutcome.Success, "r1"));
            clock.Advance(TimeSpan.FromMilliseconds(1500));
            var second = await log.AppendAsync(new AuditEvent("op", AuditActions.RoundFinish, "federation/f1", AuditOutcome.Success));
            Assert.Equal(1, first.Sequence);
            Assert.Equal(AuditHashing.Genesis, first.PreviousHash);
            Assert.Equal(first.Hash, second.PreviousHash);
            Assert.Equal(SHA256.HashData(Array.Empty<byte>()).Length, first.Hash.Length);
            Assert.Equal(clock.Now, second.Timestamp);
        }
        await using (var reopened = await OpenAsync(time: clock))
        {
            var third = await reopened.AppendAsync(Event(3));
            Assert.Equal(3, third.Sequence);
            var all = new List<AuditEntry>();
            await foreach (var e in reopened.ReadAsync()) all.Add(e);
            Assert.Equal(all[1].Hash, third.PreviousHash);
            Assert.Equal(["round.start", "round.finish", "key.use"], all.Select(e => e.Action));
            Assert.True((await VerifyAsync(reopened)).Intact);
        }
    }

    [Fact]
    public async Task Concurrent_appends_get_distinct_consecutive_sequences_and_a_valid_chain()
    {
        await using var log = await OpenAsync(checkpointEvery: 50);
        var entries = await Task.WhenAll(Enumerable.Range(1, 200).Select(i => Task.Run(() => log.AppendAsync(Event(i)))));
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), entries.Select(e => e.Sequence).Order());
        var report = await VerifyAsync(log);
        Assert.True(report.Intact, report.ToText() + " | " + string.Join(" | ", report.Breaks));
        Assert.Equal(200, report.EntriesChecked);
        Assert.True(report.CheckpointsChecked >= 1); // one per committed batch that crosses a multiple of 50
    }

    [Fact]
    public async Task Two_writers_on_one_file_extend_one_chain()
    {
        await using var first = await OpenAsync(checkpointEvery: 25);
        await using var second = await OpenAsync(checkpointEvery: 25); // another host process on the same data directory
        await Task.WhenAll(
            Task.Run(async () => { for (var i = 0; i < 60; i++) await first.AppendAsync(Event(i)); }),
            Task.Run(async () => { for (var i = 0; i < 60; i++) await second.AppendAsync(Event(100 + i)); }));
        var report = await VerifyAsync(first);
        Assert.True(report.Intact, report.ToText());
        Assert.Equal(120, report.EntriesChecked);
        Assert.True(report.CheckpointsChecked >= 1);
    }

    [Fact]
    public async Task The_database_refuses_update_and_delete()
    {
        await using var log = await FilledAsync(3);
        using var connection = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        connection.Open();
        foreach (var sql in new[] { "UPDATE audit_entries SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_entries WHERE seq = 2" })
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            Assert.Contains("append-only", Assert.Throws<SqliteException>(() => command.ExecuteNonQuery()).Message);
        }
    }

    [Fact]
    public async Task Verifier_reports_a_modified_entry()
    {
        await using var log = await FilledAsync(25);
        Tamper("UPDATE audit_entries SET actor = 'someone-else' WHERE seq = 7");
        var report = await VerifyAsync(log);
        Assert.False(report.Intact);
        Assert.Equal(new AuditBreak(AuditBreakKind.EntryModified, 7, "the entry does not match its hash (modified)"), report.FirstBreak);
        Assert.Contains("first broken link at sequence 7", report.ToText());
    }

    [Fact]
    public async Task Verifier_reports_a_deleted_entry_and_a_deleted_tail()
    {
        await using var log = await FilledAsync(25);
        await log.CheckpointAsync();
        Tamper("DELETE FROM audit_entries WHERE seq = 12");
        var report = await VerifyAsync(log);
        Assert.Equal(AuditBreakKind.EntryMissing, report.FirstBreak!.Kind);
        Assert.Equal(12, report.FirstBreak.Sequence);

        Tamper("DELETE FROM audit_entries WHERE seq >= 23");
        var truncated = await VerifyAsync(log);
        Assert.Contains(truncated.Breaks, b => b.Kind == AuditBreakKind.Truncated && b.Sequence == 23);
    }

    [Fact]
    public async Task Verifier_reports_reordered_entries_even_when_the_attacker_rehashes_them()
    {
        await using var log = await FilledAsync(25);
        // Naive swap of two entries' positions: their hashes cover the sequence number.
        Tamper("UPDATE audit_entries SET seq = -1 WHERE seq = 5", "UPDATE audit_entries SET seq = 5 WHERE seq = 6", "UPDATE audit_entries SET seq = 6 WHERE seq = -1");
        var naive = await VerifyAsync(log);
        Assert.Equal(5, naive.FirstBreak!.Sequence);
        Assert.Equal(AuditBreakKind.EntryModified, naive.FirstBreak.Kind);

        // The attacker recomputes each moved entry's own hash (the hash is unkeyed) but cannot fix the links.
        var all = new List<AuditEntry>();
        await foreach (var e in log.ReadAsync()) all.Add(e);
        var at5 = all[4];
        var at6 = all[5];
        Tamper($"UPDATE audit_entries SET hash = X'{Convert.ToHexString(Rehash(at5, 5, at5.PreviousHash))}' WHERE seq = 5",
               $"UPDATE audit_entries SET hash = X'{Convert.ToHexString(Rehash(at6, 6, at6.PreviousHash))}' WHERE seq = 6");
        var rehashed = await VerifyAsync(log);
        Assert.Equal(new AuditBreak(AuditBreakKind.BrokenLink, 5, "the entry does not link to its predecessor (reordered, inserted or rewritten)"), rehashed.FirstBreak);
    }

    [Fact]
    public async Task A_fully_rewritten_chain_is_caught_by_the_signed_checkpoint()
    {
        await using var log = await FilledAsync(20); // checkpoints at 10 and 20
        var all = new List<AuditEntry>();
        await foreach (var e in log.ReadAsync()) all.Add(e);
        // Change entry 4 and recompute every hash and link after it: the chain itself is consistent again.
        var statements = new List<string> { "UPDATE audit_entries SET actor = 'forger' WHERE seq = 4" };
        var previous = all[2].Hash;
        foreach (var e in all.Skip(3))
        {
            var actor = e.Sequence == 4 ? "forger" : e.Actor;
            var hash = AuditHashing.ComputeHash(e.Sequence, e.Timestamp, actor, e.Action, e.Resource, e.Outcome, e.RequestId, e.Detail, previous);
            statements.Add($"UPDATE audit_entries SET prev_hash = X'{Convert.ToHexString(previous)}', hash = X'{Convert.ToHexString(hash)}' WHERE seq = {e.Sequence}");
            previous = hash;
        }
        Tamper([.. statements]);
        var report = await VerifyAsync(log);
        Assert.False(report.Intact);
        Assert.Equal(AuditBreakKind.CheckpointMismatch, report.FirstBreak!.Kind);
        Assert.Equal(10, report.FirstBreak.Sequence);
    }

    [Fact]
    public async Task Deleting_the_tail_with_its_checkpoints_verifies_intact_alone_but_not_against_the_anchors()
    {
        await using var log = await FilledAsync(30); // checkpoints at 10, 20, 30
        var anchors = new MemoryBlobStore();
        Assert.Equal(3, await AuditAnchors.PublishAsync(log, anchors));
        Assert.Equal(0, await AuditAnchors.PublishAsync(log, anchors));   // anchors are written once
        Assert.True((await AuditVerifier.VerifyAsync(log, keys.Keyring, await AuditAnchors.ReadAsync(anchors), _signingKey)).Intact);

        // The attacker deletes entries 21..30 and the checkpoint that covered them: the log's own checkpoints still agree.
        Tamper("DELETE FROM audit_entries WHERE seq > 20", "DELETE FROM audit_checkpoints WHERE seq > 20");
        Assert.True((await VerifyAsync(log)).Intact, "without anchors the truncation goes unnoticed (the finding)");
        var report = await AuditVerifier.VerifyAsync(log, keys.Keyring, await AuditAnchors.ReadAsync(anchors), _signingKey);
        Assert.False(report.Intact);
        Assert.Contains(report.Breaks, b => b.Kind == AuditBreakKind.Truncated && b.Sequence == 21);
        Assert.Contains(report.Breaks, b => b.Kind == AuditBreakKind.CheckpointMissing && b.Sequence == 30);
    }

    [Fact]
    public async Task Dropping_every_checkpoint_and_rewriting_the_chain_is_caught_by_the_anchors()
    {
        await using var log = await FilledAsync(20); // checkpoints at 10 and 20
        var anchors = new MemoryBlobStore();
        await AuditAnchors.PublishAsync(log, anchors);
        var all = new List<AuditEntry>();
        await foreach (var e in log.ReadAsync()) all.Add(e);
        var statements = new List<string> { "DELETE FROM audit_checkpoints", "UPDATE audit_entries SET actor = 'forger' WHERE seq = 4" };
        var previous = all[2].Hash;
        foreach (var e in all.Skip(3))
        {
            var actor = e.Sequence == 4 ? "forger" : e.Actor;
            var hash = AuditHashing.ComputeHash(e.Sequence, e.Timestamp, actor, e.Action, e.Resource, e.Outcome, e.RequestId, e.Detail, previous);
            statements.Add($"UPDATE audit_entries SET prev_hash = X'{Convert.ToHexString(previous)}', hash = X'{Convert.ToHexString(hash)}' WHERE seq = {e.Sequence}");
            previous = hash;
        }
        Tamper([.. statements]);
        Assert.True((await VerifyAsync(log)).Intact, "without anchors the rewrite goes unnoticed (the finding)");
        var report = await AuditVerifier.VerifyAsync(log, keys.Keyring, await AuditAnchors.ReadAsync(anchors), _signingKey);
        Assert.False(report.Intact);
        Assert.Contains(report.Breaks, b => b.Kind == AuditBreakKind.CheckpointMismatch && b.Sequence == 10);
        Assert.Contains(report.Breaks, b => b.Kind == AuditBreakKind.CheckpointMissing && b.Sequence == 20);

        // An anchor forged by the attacker (signed by another key) is itself a break, not a way to vouch for the rewrite.
        var forgedStore = new MemoryBlobStore();
        var forgedKey = await keys.NewKeyAsync(KeyKind.Signing);
        var head = previous;
        var at = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var signature = await keys.Keyring.SignAsync(forgedKey, AuditHashing.CheckpointDigest(20, head, at));
        forgedStore.SetRaw("heads/000000000020.json", System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new
        {
            sequence = 20L, headHash = Convert.ToHexStringLower(head), timestampMs = at.ToUnixTimeMilliseconds(),
            keyId = signature.KeyId.ToString(), algorithm = signature.Algorithm, signature = Convert.ToHexStringLower(signature.Value),
        }));
        var forged = await AuditVerifier.VerifyAsync(log, keys.Keyring, await AuditAnchors.ReadAsync(forgedStore), _signingKey);
        Assert.Contains(forged.Breaks, b => b.Kind == AuditBreakKind.CheckpointForged);
    }

    [Fact]
    public async Task Verifier_reports_forged_checkpoints()
    {
        await using var log = await FilledAsync(10); // one checkpoint at 10
        Assert.True((await VerifyAsync(log)).Intact);

        // 1. The signed head hash altered.
        Tamper("UPDATE audit_checkpoints SET head_hash = zeroblob(32) WHERE seq = 10");
        Assert.Equal(AuditBreakKind.CheckpointForged, (await VerifyAsync(log)).FirstBreak!.Kind);

        // 2. A checkpoint signed, validly, by another key in the same vault.
        var attackerKey = await keys.NewKeyAsync(KeyKind.Signing);
        for (var i = 11; i <= 12; i++) await log.AppendAsync(Event(i));
        var head = new List<AuditEntry>();
        await foreach (var e in log.ReadAsync(12)) head.Add(e);
        var ts = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000);
        var signature = await keys.Keyring.SignAsync(attackerKey, AuditHashing.CheckpointDigest(12, head[0].Hash, ts));
        Tamper($"INSERT INTO audit_checkpoints VALUES (12, X'{Convert.ToHexString(head[0].Hash)}', {ts.ToUnixTimeMilliseconds()}, '{attackerKey}', '{signature.KeyId.Version}', 'ES256', X'{Convert.ToHexString(signature.Value)}')",
               "UPDATE audit_checkpoints SET head_hash = (SELECT hash FROM audit_entries WHERE seq = 10) WHERE seq = 10");
        var report = await VerifyAsync(log);
        Assert.Equal(new[] { 12L }, report.Breaks.Select(b => b.Sequence));
        Assert.Equal(AuditBreakKind.CheckpointForged, report.FirstBreak!.Kind);

        // 3. Random bytes as the signature of the audit key.
        Tamper("DELETE FROM audit_checkpoints WHERE seq = 12", $"UPDATE audit_checkpoints SET signature = X'{Convert.ToHexString(RandomNumberGenerator.GetBytes(64))}' WHERE seq = 10");
        Assert.Equal(AuditBreakKind.CheckpointForged, (await VerifyAsync(log)).FirstBreak!.Kind);
    }

    [Fact]
    public async Task Export_to_the_blob_store_is_incremental_append_only_and_verifiable()
    {
        await using var log = await FilledAsync(25);
        var store = new MemoryBlobStore();
        Assert.Equal(25, await AuditExporter.ExportAsync(log, store, entriesPerBlob: 10));
        for (var i = 26; i <= 30; i++) await log.AppendAsync(Event(i));
        Assert.Equal(30, await AuditExporter.ExportAsync(log, store, entriesPerBlob: 10));
        var names = new List<string>();
        await foreach (var b in store.ListAsync("audit/entries/")) names.Add(b.Name);
        Assert.Equal(["audit/entries/000000000001-000000000010.jsonl", "audit/entries/000000000011-000000000020.jsonl",
            "audit/entries/000000000021-000000000025.jsonl", "audit/entries/000000000026-000000000030.jsonl"], names);

        var checkpoints = await AuditExporter.ReadCheckpointsAsync(store);
        var exported = await AuditVerifier.VerifyAsync(AuditExporter.ReadEntriesAsync(store), checkpoints, keys.Keyring, _signingKey);
        Assert.True(exported.Intact, exported.ToText());
        Assert.Equal(30, exported.EntriesChecked);

        // Swap two lines inside an exported blob.
        var lines = System.Text.Encoding.UTF8.GetString(store.GetRaw(names[1])).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        (lines[2], lines[3]) = (lines[3], lines[2]);
        store.SetRaw(names[1], System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"));
        var reordered = await AuditVerifier.VerifyAsync(AuditExporter.ReadEntriesAsync(store), checkpoints, keys.Keyring, _signingKey);
        Assert.False(reordered.Intact);
        Assert.Equal(13, reordered.FirstBreak!.Sequence);
        Assert.Equal(AuditBreakKind.EntryMissing, reordered.FirstBreak.Kind);
        Assert.Contains(reordered.Breaks, b => b.Kind == AuditBreakKind.OutOfOrder && b.Sequence == 13);
    }

    [Fact]
    public async Task Appends_validate_their_input()
    {
        await using var log = await OpenAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => log.AppendAsync(new AuditEvent("", "a", "r", AuditOutcome.Success)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => log.AppendAsync(new AuditEvent("a", "a", "r", (AuditOutcome)42)));
    }
}
