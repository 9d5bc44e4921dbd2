namespace Serverless.Security.Audit;

/// <summary>
/// Signed checkpoint heads kept outside the audit database: one write-once blob per checkpoint
/// (<c>heads/{sequence:D12}.json</c>, If-None-Match: *) in a container of its own, meant to sit behind
/// its own storage credential (and, in Azure, a time-based immutability policy) so that whoever can
/// rewrite the database cannot also rewrite the anchors. <see cref="AuditVerifier"/> compares the log
/// against them: a head the log no longer carries, a head beyond the log's end, or a head that differs
/// from the entry at its sequence is a break, so deleting the tail together with its checkpoints, or
/// dropping every checkpoint and rewriting the chain, no longer verifies as intact. Entries after the
/// newest anchor remain unprotected until the next checkpoint (every five minutes by default).
/// </summary>
public static class AuditAnchors
{
    private const string Prefix = "heads/";

    /// <summary>Anchors every checkpoint of <paramref name="log"/> not anchored yet; returns how many were written.</summary>
    public static async Task<int> PublishAsync(IAuditLog log, IBlobStore anchors, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(anchors);
        var existing = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var blob in anchors.ListAsync(Prefix, cancellationToken)) existing.Add(blob.Name);
        var written = 0;
        await foreach (var checkpoint in log.ReadCheckpointsAsync(cancellationToken))
        {
            var name = Name(checkpoint.Sequence);
            if (existing.Contains(name)) continue;
            var bytes = JsonSerializer.SerializeToUtf8Bytes(AuditExporter.ToCheckpointDto(checkpoint), AuditJson.Default.CheckpointDto);
            try
            {
                await anchors.PutAsync(name, new MemoryStream(bytes), BlobCondition.MustNotExist, cancellationToken);
                written++;
            }
            catch (BlobConditionFailedException)
            {
                // anchored meanwhile by another instance: anchors are never overwritten
            }
        }
        return written;
    }

    /// <summary>Every anchored head, in sequence order. An anchor that does not parse is returned as unsigned, so the verifier reports it.</summary>
    public static async Task<IReadOnlyList<AuditCheckpoint>> ReadAsync(IBlobStore anchors, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(anchors);
        var names = new List<string>();
        await foreach (var blob in anchors.ListAsync(Prefix, cancellationToken)) names.Add(blob.Name);
        names.Sort(StringComparer.Ordinal);
        var result = new List<AuditCheckpoint>(names.Count);
        foreach (var name in names)
        {
            await using var download = await anchors.GetAsync(name, cancellationToken);
            if (download is null) continue;
            AuditExporter.CheckpointDto? dto;
            try
            {
                dto = await JsonSerializer.DeserializeAsync(download.Content, AuditJson.Default.CheckpointDto, cancellationToken);
            }
            catch (JsonException)
            {
                dto = null;
            }
            result.Add(dto is null ? Unreadable(name) : AuditExporter.FromCheckpointDto(dto));
        }
        return result;
    }

    private static string Name(long sequence) => $"{Prefix}{sequence:D12}.json";

    private static AuditCheckpoint Unreadable(string name)
    {
        var file = name[Prefix.Length..].Replace(".json", "", StringComparison.Ordinal);
        var sequence = long.TryParse(file, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 0;
        return new AuditCheckpoint(sequence, [], DateTimeOffset.UnixEpoch, new KeySignature(new KeyId("unreadable-anchor", "0"), "none", []));
    }
}
