using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;

namespace Serverless.Inference;

/// <summary>
/// The encrypted logits of one <see cref="CiphertextGroup"/>: one ciphertext at the bottom of the
/// modulus chain, slot r holding record r's logit (the partner applies the sigmoid after decrypting).
/// </summary>
public sealed class EncryptedGroupResult
{
    internal EncryptedGroupResult(EvaluationPlan plan, int index, int recordCount, byte[] keyId, Ciphertext logits)
    {
        Plan = plan;
        Index = index;
        RecordCount = recordCount;
        KeyId = keyId;
        Logits = logits;
    }

    public EvaluationPlan Plan { get; }

    public int Index { get; }

    public int RecordCount { get; }

    public ReadOnlyMemory<byte> KeyId { get; }

    internal Ciphertext Logits { get; }

    public byte[] ToBytes()
    {
        using var ms = new MemoryStream();
        BlobFormat.WriteHeader(ms, BlobFormat.Kind.GroupResult, Plan.ParameterHash.Span);
        ms.Write(KeyId.Span);
        WriteBody(ms);
        return ms.ToArray();
    }

    internal void WriteBody(Stream s)
    {
        BlobFormat.WriteInt32(s, Index);
        BlobFormat.WriteInt32(s, RecordCount);
        BlobFormat.WriteBlob(s, CkksSerializer.Save(Logits));
    }

    /// <exception cref="HeFormatException">Malformed, truncated, other parameters, or not at the level the plan ends on.</exception>
    public static EncryptedGroupResult Read(ReadOnlySpan<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s =>
        {
            var r = new BlobReader(s, "group result");
            r.ReadHeader(BlobFormat.Kind.GroupResult, plan);
            var keyId = r.ReadBytes(32, "key id");
            var g = ReadBody(r, plan, keyId, plan.MaxGroups - 1, null);
            r.ExpectEnd();
            return g;
        });
    }

    internal static EncryptedGroupResult ReadBody(BlobReader r, EvaluationPlan plan, byte[] keyId, int maxIndex, int? expectedIndex)
    {
        var index = r.ReadInt32InRange("group index", 0, maxIndex);
        if (expectedIndex is { } e && index != e) throw new HeFormatException($"encrypted result: group {index} where {e} was expected");
        var records = r.ReadInt32InRange("group record count", 1, plan.SlotsPerCiphertext);
        var ctx = plan.Context;
        var ct = CkksSerializer.LoadCiphertext(ctx, r.ReadBlob("logits ciphertext", CiphertextGroup.CiphertextBytes(ctx)));
        var level = plan.LevelsAvailable - plan.LevelsConsumed;
        if (ct.Size != 2 || ct.Level != level)
            throw new HeFormatException($"encrypted result: group {index} holds {ct}, the plan ends at level {level} with a size-2 ciphertext");
        return new EncryptedGroupResult(plan, index, records, keyId, ct);
    }
}

/// <summary>All groups' encrypted logits of one batch, in order: the blob the server stores for the partner.</summary>
public sealed class EncryptedResult
{
    internal EncryptedResult(EvaluationPlan plan, int recordCount, byte[] keyId, EncryptedGroupResult[] groups)
    {
        Plan = plan;
        RecordCount = recordCount;
        KeyId = keyId;
        Groups = groups;
    }

    public EvaluationPlan Plan { get; }

    public int RecordCount { get; }

    public ReadOnlyMemory<byte> KeyId { get; }

    public IReadOnlyList<EncryptedGroupResult> Groups { get; }

    /// <summary>Joins per-group results (any order) into the batch's result; indexes must be 0..n−1, once each, same keys.</summary>
    /// <exception cref="ArgumentException">Missing, duplicate or foreign groups.</exception>
    public static EncryptedResult Join(EvaluationPlan plan, IEnumerable<EncryptedGroupResult> groups)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(groups);
        var list = groups.OrderBy(g => g.Index).ToArray();
        if (list.Length == 0) throw new ArgumentException("cannot join: no group results", nameof(groups));
        var keyId = list[0].KeyId.ToArray();
        var records = 0;
        for (var i = 0; i < list.Length; i++)
        {
            var g = list[i];
            if (!ReferenceEquals(g.Plan, plan) && !g.Plan.ParameterHash.Span.SequenceEqual(plan.ParameterHash.Span))
                throw new ArgumentException($"cannot join: group {g.Index} was made under another plan", nameof(groups));
            if (g.Index != i) throw new ArgumentException($"cannot join: group {i} is missing or duplicated (found {g.Index})", nameof(groups));
            if (!g.KeyId.Span.SequenceEqual(keyId)) throw new ArgumentException($"cannot join: group {g.Index} was encrypted under other keys", nameof(groups));
            if (i < list.Length - 1 && g.RecordCount != plan.SlotsPerCiphertext)
                throw new ArgumentException($"cannot join: group {g.Index} is not full but is not the last", nameof(groups));
            records += g.RecordCount;
        }
        return new EncryptedResult(plan, records, keyId, list);
    }

    public byte[] ToBytes()
    {
        using var ms = new MemoryStream();
        WriteTo(ms);
        return ms.ToArray();
    }

    /// <summary>Layout: header, key id, record count, group count, then each group (index, record count, logits ciphertext).</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteHeader(stream, BlobFormat.Kind.Result, Plan.ParameterHash.Span);
        stream.Write(KeyId.Span);
        BlobFormat.WriteInt32(stream, RecordCount);
        BlobFormat.WriteInt32(stream, Groups.Count);
        foreach (var g in Groups) g.WriteBody(stream);
    }

    /// <exception cref="HeFormatException">Malformed, truncated, other parameters, or inconsistent counts.</exception>
    public static EncryptedResult Read(ReadOnlySpan<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan));
    }

    /// <inheritdoc cref="Read(ReadOnlySpan{byte}, EvaluationPlan)"/>
    public static EncryptedResult Read(Stream stream, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var r = new BlobReader(stream, "encrypted result");
        r.ReadHeader(BlobFormat.Kind.Result, plan);
        var keyId = r.ReadBytes(32, "key id");
        var records = r.ReadInt32InRange("record count", 1, plan.MaxRecords);
        var slots = plan.SlotsPerCiphertext;
        var expected = (records + slots - 1) / slots;
        var count = r.ReadInt32InRange("group count", expected, expected);
        var groups = new EncryptedGroupResult[count];
        for (var g = 0; g < count; g++)
        {
            groups[g] = EncryptedGroupResult.ReadBody(r, plan, keyId, count - 1, g);
            var inGroup = Math.Min(slots, records - g * slots);
            if (groups[g].RecordCount != inGroup)
                throw new HeFormatException($"encrypted result: group {g} declares {groups[g].RecordCount} records, {inGroup} expected");
        }
        r.ExpectEnd();
        return new EncryptedResult(plan, records, keyId, groups);
    }
}
