namespace Serverless.Security.Audit;

/// <summary>How the chain is broken at a given point.</summary>
public enum AuditBreakKind
{
    /// <summary>The entry's content does not hash to its stored hash: it was modified.</summary>
    EntryModified = 1,

    /// <summary>Sequence numbers jump: entries were deleted.</summary>
    EntryMissing = 2,

    /// <summary>Sequence numbers go backwards or repeat: entries were reordered or duplicated.</summary>
    OutOfOrder = 3,

    /// <summary>The entry hashes correctly but does not name its predecessor's hash: reordered, inserted, or the chain was rewritten.</summary>
    BrokenLink = 4,

    /// <summary>A checkpoint's signature does not verify with the vault key it names.</summary>
    CheckpointForged = 5,

    /// <summary>A validly signed checkpoint disagrees with the entry at its sequence: history was rewritten.</summary>
    CheckpointMismatch = 6,

    /// <summary>A validly signed checkpoint names a sequence beyond the last entry: the tail was deleted.</summary>
    Truncated = 7,

    /// <summary>A head anchored outside the log (<see cref="AuditAnchors"/>) is no longer among the log's checkpoints: checkpoints were dropped.</summary>
    CheckpointMissing = 8,
}

public sealed record AuditBreak(AuditBreakKind Kind, long Sequence, string Message);

/// <summary>The verifier's answer: intact, or the first broken link (and every break found, up to a limit).</summary>
public sealed record AuditVerificationReport(bool Intact, long EntriesChecked, int CheckpointsChecked, long LastSequence, AuditBreak? FirstBreak, IReadOnlyList<AuditBreak> Breaks)
{
    public string ToText()
    {
        var text = new StringBuilder();
        text.Append(Intact ? "audit chain intact" : "audit chain BROKEN");
        text.Append($": {EntriesChecked} entries, {CheckpointsChecked} signed checkpoints, last sequence {LastSequence}");
        if (FirstBreak is { } first) text.Append($"; first broken link at sequence {first.Sequence} ({first.Kind}): {first.Message}");
        return text.ToString();
    }
}

/// <summary>
/// Walks the chain from the first entry: recomputes every hash, checks every link and sequence
/// number, then checks every checkpoint's signature in the vault and that it matches the chain.
/// Works on the live log and on an export read back from the blob store.
/// </summary>
public static class AuditVerifier
{
    private const int MaxBreaks = 100;

    /// <param name="signingKeyName">The only vault key whose signatures count (checkpoints signed by any other key are forged).</param>
    public static Task<AuditVerificationReport> VerifyAsync(IAuditLog log, IKeyVault vault, string signingKeyName = "audit-signing", CancellationToken cancellationToken = default) =>
        VerifyAsync(log, vault, anchors: null, signingKeyName, cancellationToken);

    /// <summary>
    /// Verifies the live log against its own checkpoints and against <paramref name="anchors"/>, the
    /// signed heads kept outside it (<see cref="AuditAnchors.ReadAsync"/>): every anchor must still be a
    /// checkpoint of the log, within its end, and agree with the entry at its sequence.
    /// </summary>
    public static async Task<AuditVerificationReport> VerifyAsync(IAuditLog log, IKeyVault vault, IReadOnlyList<AuditCheckpoint>? anchors, string signingKeyName = "audit-signing",
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(log);
        var checkpoints = new List<AuditCheckpoint>();
        await foreach (var checkpoint in log.ReadCheckpointsAsync(cancellationToken)) checkpoints.Add(checkpoint);
        // An anchor identical to a log checkpoint adds nothing; any other is checked like a checkpoint (signature, end of log, head).
        var heads = new Dictionary<long, byte[]>();
        foreach (var c in checkpoints) heads.TryAdd(c.Sequence, c.HeadHash);
        var extra = (anchors ?? []).Where(a => !(heads.TryGetValue(a.Sequence, out var h) && h.AsSpan().SequenceEqual(a.HeadHash)));
        var report = await VerifyAsync(log.ReadAsync(1, cancellationToken), [.. checkpoints, .. extra], vault, signingKeyName, cancellationToken);
        if (anchors is not { Count: > 0 }) return report with { CheckpointsChecked = checkpoints.Count };
        var inLog = checkpoints.Select(c => c.Sequence).ToHashSet();
        var breaks = report.Breaks.ToList();
        foreach (var anchor in anchors)
            if (!inLog.Contains(anchor.Sequence) && breaks.Count < MaxBreaks)
                breaks.Add(new AuditBreak(AuditBreakKind.CheckpointMissing, anchor.Sequence, "a checkpoint anchored outside the log is missing from it (checkpoints dropped)"));
        breaks.Sort((a, b) => a.Sequence != b.Sequence ? a.Sequence.CompareTo(b.Sequence) : a.Kind.CompareTo(b.Kind));
        return report with { Intact = breaks.Count == 0, CheckpointsChecked = checkpoints.Count, FirstBreak = breaks.Count > 0 ? breaks[0] : null, Breaks = breaks };
    }

    public static async Task<AuditVerificationReport> VerifyAsync(IAsyncEnumerable<AuditEntry> entries, IReadOnlyList<AuditCheckpoint> checkpoints, IKeyVault vault,
        string signingKeyName = "audit-signing", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(checkpoints);
        ArgumentNullException.ThrowIfNull(vault);
        var breaks = new List<AuditBreak>();
        void Report(AuditBreakKind kind, long sequence, string message)
        {
            if (breaks.Count < MaxBreaks) breaks.Add(new AuditBreak(kind, sequence, message));
        }

        // Hashes at checkpointed sequences, filled in while walking (a sequence may be both a checkpoint and an anchor).
        var anchored = new Dictionary<long, byte[]>();
        foreach (var checkpoint in checkpoints) anchored[checkpoint.Sequence] = [];

        var expected = 1L;
        var previousHash = AuditHashing.Genesis;
        long count = 0, last = 0;
        await foreach (var entry in entries.WithCancellation(cancellationToken))
        {
            count++;
            if (entry.Sequence > expected)
                Report(AuditBreakKind.EntryMissing, expected, $"entries {expected}..{entry.Sequence - 1} are missing (deleted)");
            else if (entry.Sequence < expected)
                Report(AuditBreakKind.OutOfOrder, entry.Sequence, $"sequence {entry.Sequence} appears after {expected - 1} (reordered or duplicated)");

            var recomputed = AuditHashing.ComputeHash(entry);
            if (!CryptographicOperations.FixedTimeEquals(recomputed, entry.Hash))
                Report(AuditBreakKind.EntryModified, entry.Sequence, "the entry does not match its hash (modified)");
            else if (entry.Sequence == expected && !CryptographicOperations.FixedTimeEquals(entry.PreviousHash, previousHash))
                Report(AuditBreakKind.BrokenLink, entry.Sequence, "the entry does not link to its predecessor (reordered, inserted or rewritten)");

            if (anchored.ContainsKey(entry.Sequence)) anchored[entry.Sequence] = entry.Hash;
            previousHash = entry.Hash;
            last = entry.Sequence;
            expected = Math.Max(expected, entry.Sequence + 1);
        }

        foreach (var checkpoint in checkpoints)
        {
            var digest = AuditHashing.CheckpointDigest(checkpoint.Sequence, checkpoint.HeadHash, checkpoint.Timestamp);
            bool signed;
            try { signed = checkpoint.Signature.KeyId.Name == signingKeyName && await vault.VerifyAsync(checkpoint.Signature, digest, cancellationToken); }
            catch (Exception e) when (e is KeyNotFoundException or KeyVaultException or ArgumentException) { signed = false; }
            if (!signed)
            {
                Report(AuditBreakKind.CheckpointForged, checkpoint.Sequence, $"checkpoint signature does not verify with the audit signing key (it names '{checkpoint.Signature.KeyId}')");
                continue;
            }
            if (checkpoint.Sequence > last)
                Report(AuditBreakKind.Truncated, last + 1, $"a signed checkpoint covers sequence {checkpoint.Sequence} but the log ends at {last} (tail deleted)");
            else if (anchored[checkpoint.Sequence] is not { Length: AuditHashing.HashLength } hash || !CryptographicOperations.FixedTimeEquals(hash, checkpoint.HeadHash))
                Report(AuditBreakKind.CheckpointMismatch, checkpoint.Sequence, "the entry at this signed checkpoint differs from what was signed (history rewritten)");
        }

        breaks.Sort((a, b) => a.Sequence != b.Sequence ? a.Sequence.CompareTo(b.Sequence) : a.Kind.CompareTo(b.Kind));
        return new AuditVerificationReport(breaks.Count == 0, count, checkpoints.Count, last, breaks.Count > 0 ? breaks[0] : null, breaks);
    }
}
