using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Serialization;

namespace Serverless.Security.Audit;

/// <summary>
/// Copies the audit trail to the blob store as JSON lines: <c>{prefix}entries/{first:D12}-{last:D12}.jsonl</c>
/// (written with If-None-Match: *, so an export is never overwritten) and one blob per checkpoint.
/// Each run continues after the last exported sequence. <see cref="ReadEntriesAsync"/> reads an export
/// back for <see cref="AuditVerifier"/>.
/// </summary>
public static class AuditExporter
{
    /// <summary>Exports new entries and checkpoints; returns the last exported sequence.</summary>
    public static async Task<long> ExportAsync(IAuditLog log, IBlobStore store, string prefix = "audit/", int entriesPerBlob = 10_000, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(store);
        if (entriesPerBlob < 1) throw new ArgumentOutOfRangeException(nameof(entriesPerBlob));
        var exported = 0L;
        await foreach (var blob in store.ListAsync(prefix + "entries/", cancellationToken))
            if (ParseRange(blob.Name) is { } range) exported = Math.Max(exported, range.Last);

        var batch = new List<AuditEntry>(Math.Min(entriesPerBlob, 4096));
        await foreach (var entry in log.ReadAsync(exported + 1, cancellationToken))
        {
            batch.Add(entry);
            if (batch.Count == entriesPerBlob)
            {
                exported = await WriteBatchAsync(store, prefix, batch, cancellationToken);
                batch.Clear();
            }
        }
        if (batch.Count > 0) exported = await WriteBatchAsync(store, prefix, batch, cancellationToken);

        await foreach (var checkpoint in log.ReadCheckpointsAsync(cancellationToken))
        {
            var name = $"{prefix}checkpoints/{checkpoint.Sequence:D12}.json";
            var bytes = JsonSerializer.SerializeToUtf8Bytes(ToDto(checkpoint), AuditJson.Default.CheckpointDto);
            try { await store.PutAsync(name, new MemoryStream(bytes), BlobCondition.MustNotExist, cancellationToken); }
            catch (BlobConditionFailedException) { /* exported before */ }
        }
        return exported;
    }

    /// <summary>Every exported entry, in blob-name order then line order (as stored: a verifier sees any reordering).</summary>
    public static async IAsyncEnumerable<AuditEntry> ReadEntriesAsync(IBlobStore store, string prefix = "audit/", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var names = new List<string>();
        await foreach (var blob in store.ListAsync(prefix + "entries/", cancellationToken)) names.Add(blob.Name);
        foreach (var name in names)
        {
            await using var download = await store.GetAsync(name, cancellationToken);
            if (download is null) continue;
            using var reader = new StreamReader(download.Content, Encoding.UTF8);
            string? line;
            while ((line = await reader.ReadLineAsync(cancellationToken)) is not null)
            {
                if (line.Length == 0) continue;
                var dto = JsonSerializer.Deserialize(line, AuditJson.Default.EntryDto) ?? throw new FormatException($"Null entry in {name}.");
                yield return FromDto(dto);
            }
        }
    }

    public static async Task<IReadOnlyList<AuditCheckpoint>> ReadCheckpointsAsync(IBlobStore store, string prefix = "audit/", CancellationToken cancellationToken = default)
    {
        var result = new List<AuditCheckpoint>();
        var names = new List<string>();
        await foreach (var blob in store.ListAsync(prefix + "checkpoints/", cancellationToken)) names.Add(blob.Name);
        foreach (var name in names)
        {
            await using var download = await store.GetAsync(name, cancellationToken);
            if (download is null) continue;
            var dto = await JsonSerializer.DeserializeAsync(download.Content, AuditJson.Default.CheckpointDto, cancellationToken)
                ?? throw new FormatException($"Null checkpoint in {name}.");
            result.Add(FromCheckpointDto(dto));
        }
        return result;
    }

    private static async Task<long> WriteBatchAsync(IBlobStore store, string prefix, List<AuditEntry> batch, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        foreach (var entry in batch)
        {
            JsonSerializer.Serialize(buffer, ToDto(entry), AuditJson.Default.EntryDto);
            buffer.WriteByte((byte)'\n');
        }
        buffer.Position = 0;
        var first = batch[0].Sequence;
        var last = batch[^1].Sequence;
        await store.PutAsync($"{prefix}entries/{first:D12}-{last:D12}.jsonl", buffer, BlobCondition.MustNotExist, cancellationToken);
        return last;
    }

    private static (long First, long Last)? ParseRange(string name)
    {
        var file = name[(name.LastIndexOf('/') + 1)..];
        if (!file.EndsWith(".jsonl", StringComparison.Ordinal)) return null;
        var parts = file[..^6].Split('-');
        return parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last) ? (first, last) : null;
    }

    private static EntryDto ToDto(AuditEntry e) => new(e.Sequence, e.Timestamp.ToUnixTimeMilliseconds(), e.Actor, e.Action, e.Resource,
        e.Outcome.ToString(), e.RequestId, e.Detail, Convert.ToHexStringLower(e.PreviousHash), Convert.ToHexStringLower(e.Hash));

    private static AuditEntry FromDto(EntryDto d) => new(d.Sequence, DateTimeOffset.FromUnixTimeMilliseconds(d.TimestampMs), d.Actor, d.Action, d.Resource,
        Enum.Parse<AuditOutcome>(d.Outcome), d.RequestId, d.Detail, Convert.FromHexString(d.PreviousHash), Convert.FromHexString(d.Hash));

    internal static CheckpointDto ToCheckpointDto(AuditCheckpoint c) => ToDto(c);

    internal static AuditCheckpoint FromCheckpointDto(CheckpointDto dto) =>
        new(dto.Sequence, Convert.FromHexString(dto.HeadHash), DateTimeOffset.FromUnixTimeMilliseconds(dto.TimestampMs),
            new KeySignature(KeyId.Parse(dto.KeyId), dto.Algorithm, Convert.FromHexString(dto.Signature)));

    private static CheckpointDto ToDto(AuditCheckpoint c) => new(c.Sequence, Convert.ToHexStringLower(c.HeadHash), c.Timestamp.ToUnixTimeMilliseconds(),
        c.Signature.KeyId.ToString(), c.Signature.Algorithm, Convert.ToHexStringLower(c.Signature.Value));

    internal sealed record EntryDto(long Sequence, long TimestampMs, string Actor, string Action, string Resource, string Outcome, string RequestId, string Detail, string PreviousHash, string Hash);
    internal sealed record CheckpointDto(long Sequence, string HeadHash, long TimestampMs, string KeyId, string Algorithm, string Signature);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AuditExporter.EntryDto))]
[JsonSerializable(typeof(AuditExporter.CheckpointDto))]
internal sealed partial class AuditJson : JsonSerializerContext;
