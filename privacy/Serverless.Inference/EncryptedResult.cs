namespace Serverless.Inference;

/// <summary>
/// The encrypted logits of one <see cref="CiphertextGroup"/>: one ciphertext at the bottom of the
/// modulus chain, slot r holding record r's logit (the partner applies the sigmoid after decrypting).
/// </summary>
public sealed class EncryptedGroupResult : GroupBlob
{
    internal EncryptedGroupResult(EvaluationPlan plan, int index, int recordCount, byte[] keyId, Ciphertext logits)
        : base(plan, index, recordCount, keyId) => Logits = logits;

    internal Ciphertext Logits { get; }

    private protected override BlobFormat.Kind StandaloneKind => BlobFormat.Kind.GroupResult;

    private protected override void WriteCiphertexts(Stream stream) => BlobFormat.WriteBlob(stream, CkksSerializer.Save(Logits));

    /// <exception cref="HeFormatException">Malformed, truncated, other parameters, or not at the level the plan ends on.</exception>
    public static EncryptedGroupResult Read(ReadOnlyMemory<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => ReadStandalone(s, plan, BlobFormat.Kind.GroupResult, "group result",
            (r, keyId) => ReadBody(r, plan, keyId, plan.MaxGroups - 1, null)));
    }

    internal static EncryptedGroupResult ReadBody(BlobReader r, EvaluationPlan plan, byte[] keyId, int maxIndex, int? expectedIndex)
    {
        var (index, records) = r.ReadGroupHead(maxIndex, expectedIndex, plan.SlotsPerCiphertext);
        var ctx = plan.Context;
        var ct = CkksSerializer.LoadCiphertext(ctx, r.ReadBlob("logits ciphertext", CiphertextGroup.CiphertextBytes(ctx)));
        var level = plan.LevelsAvailable - plan.LevelsConsumed;
        if (ct.Size != 2 || ct.Level != level)
            throw new HeFormatException($"encrypted result: group {index} holds {ct}, the plan ends at level {level} with a size-2 ciphertext");
        return new EncryptedGroupResult(plan, index, records, keyId, ct);
    }
}

/// <summary>All groups' encrypted logits of one batch, in order: the blob the server stores for the partner.</summary>
public sealed class EncryptedResult : BatchBlob<EncryptedGroupResult>
{
    internal EncryptedResult(EvaluationPlan plan, int recordCount, byte[] keyId, EncryptedGroupResult[] groups)
        : base(plan, recordCount, keyId, groups)
    {
    }

    private protected override BlobFormat.Kind Kind => BlobFormat.Kind.Result;

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

    /// <exception cref="HeFormatException">Malformed, truncated, other parameters, or inconsistent counts.</exception>
    public static EncryptedResult Read(ReadOnlyMemory<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan));
    }

    /// <inheritdoc cref="Read(ReadOnlyMemory{byte}, EvaluationPlan)"/>
    public static EncryptedResult Read(Stream stream, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var r = new BlobReader(stream, "encrypted result");
        var keyId = r.ReadKeyedHeader(BlobFormat.Kind.Result, plan);
        var records = r.ReadInt32InRange("record count", 1, plan.MaxRecords);
        var slots = plan.SlotsPerCiphertext;
        var groups = new EncryptedGroupResult[r.ReadGroupCount(records, slots)];
        for (var g = 0; g < groups.Length; g++)
        {
            groups[g] = EncryptedGroupResult.ReadBody(r, plan, keyId, groups.Length - 1, g);
            r.CheckGroupRecords(g, groups[g].RecordCount, records, slots);
        }
        r.ExpectEnd();
        return new EncryptedResult(plan, records, keyId, groups);
    }
}
