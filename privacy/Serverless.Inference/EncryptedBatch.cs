namespace Serverless.Inference;

/// <summary>
/// Up to <see cref="EvaluationPlan.SlotsPerCiphertext"/> records, encrypted record-per-slot: one
/// ciphertext per (step t, feature f) holding that value of every record in its slots, then one
/// ciphertext per step holding the mask (1 real, 0 padding). A record's n real visits sit at steps
/// T − n .. T − 1 (left padding with zeros). Input order: index t·Features + f for values,
/// Steps·Features + t for masks. The unit an evaluation activity works on.
/// </summary>
public sealed class CiphertextGroup : GroupBlob
{
    internal CiphertextGroup(EvaluationPlan plan, int index, int recordCount, byte[] keyId, Ciphertext[] inputs)
        : base(plan, index, recordCount, keyId) => Inputs = inputs;

    internal Ciphertext[] Inputs { get; }

    private protected override BlobFormat.Kind StandaloneKind => BlobFormat.Kind.Group;

    private protected override void WriteCiphertexts(Stream stream)
    {
        foreach (var ct in Inputs) BlobFormat.WriteBlob(stream, CkksSerializer.Save(ct));
    }

    /// <summary>Reads one group written by <see cref="GroupBlob.ToBytes"/> and validates it against the plan.</summary>
    /// <exception cref="HeFormatException">Truncated, other parameters, wrong layout, or ciphertexts not fresh at the top level.</exception>
    public static CiphertextGroup Read(ReadOnlyMemory<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan));
    }

    /// <inheritdoc cref="Read(ReadOnlyMemory{byte}, EvaluationPlan)"/>
    public static CiphertextGroup Read(Stream stream, EvaluationPlan plan) =>
        ReadStandalone(stream, plan, BlobFormat.Kind.Group, "ciphertext group",
            (r, keyId) => ReadBody(r, plan, keyId, maxIndex: plan.MaxGroups - 1, expectedIndex: null));

    internal static CiphertextGroup ReadBody(BlobReader r, EvaluationPlan plan, byte[] keyId, int maxIndex, int? expectedIndex)
    {
        var (index, records) = r.ReadGroupHead(maxIndex, expectedIndex, plan.SlotsPerCiphertext);
        var ctx = plan.Context;
        var maxCt = CiphertextBytes(ctx);
        var inputs = new Ciphertext[plan.CiphertextsPerGroup];
        for (var i = 0; i < inputs.Length; i++)
        {
            var ct = CkksSerializer.LoadCiphertext(ctx, r.ReadBlob($"ciphertext {i} of group {index}", maxCt));
            if (ct.Size != 2 || ct.Level != ctx.MaxLevel || Math.Abs(ct.Scale / ctx.ScaleAt(ctx.MaxLevel) - 1) > 1e-9)
                throw new HeFormatException(
                    $"ciphertext group {index}: input {i} is {ct}, expected a fresh size-2 ciphertext at level {ctx.MaxLevel} with scale 2^{Math.Log2(ctx.ScaleAt(ctx.MaxLevel)):0.##} " +
                    $"(the circuit needs all {plan.LevelsConsumed} levels)");
            inputs[i] = ct;
        }
        return new CiphertextGroup(plan, index, records, keyId, inputs);
    }

    /// <summary>Upper bound on one serialized ciphertext (unseeded, size 2, top level).</summary>
    internal static int CiphertextBytes(CkksContext ctx) => 256 + 2 * (ctx.MaxLevel + 1) * ctx.N * 8;
}

/// <summary>
/// A partner's encrypted batch: a header (parameter hash, key id, record count, layout) and one
/// <see cref="CiphertextGroup"/> per <see cref="EvaluationPlan.SlotsPerCiphertext"/> records. Made by
/// <see cref="BatchEncryptor"/>, stored as one blob, read back with full validation by <see cref="Read(Stream, EvaluationPlan, int?)"/>.
/// </summary>
public sealed class EncryptedBatch : BatchBlob<CiphertextGroup>
{
    internal EncryptedBatch(EvaluationPlan plan, int recordCount, byte[] keyId, CiphertextGroup[] groups)
        : base(plan, recordCount, keyId, groups)
    {
    }

    public string KeyIdHex => Convert.ToHexString(KeyId.Span);

    private protected override BlobFormat.Kind Kind => BlobFormat.Kind.Batch;

    /// <summary>Features and steps, checked against the plan on reading.</summary>
    private protected override void WriteLayout(Stream stream)
    {
        BlobFormat.WriteInt32(stream, Plan.Features);
        BlobFormat.WriteInt32(stream, Plan.Steps);
    }

    /// <summary>
    /// Reads a batch and validates everything before use: magic, version, parameter hash, layout
    /// against the plan, record count (at most <paramref name="maxRecords"/>, default the plan's
    /// <see cref="EvaluationPlan.MaxRecords"/>), group count and each group's record count consistent
    /// with it, every ciphertext's length, shape, level, scale and residues; no trailing bytes.
    /// Sizes are checked before anything is allocated.
    /// </summary>
    /// <exception cref="HeFormatException">Anything wrong; the message says what (truncated input, wrong parameters, too many records ...).</exception>
    public static EncryptedBatch Read(Stream stream, EvaluationPlan plan, int? maxRecords = null)
    {
        var reader = EncryptedBatchReader.Open(stream, plan, maxRecords);
        var groups = new CiphertextGroup[reader.GroupCount];
        for (var g = 0; g < groups.Length; g++) groups[g] = reader.ReadGroup();
        reader.Finish();
        return new EncryptedBatch(plan, reader.RecordCount, reader.KeyId.ToArray(), groups);
    }

    /// <inheritdoc cref="Read(Stream, EvaluationPlan, int?)"/>
    public static EncryptedBatch Read(ReadOnlyMemory<byte> data, EvaluationPlan plan, int? maxRecords = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan, maxRecords));
    }
}

/// <summary>
/// Reads a batch blob one group at a time, with the same validation as <see cref="EncryptedBatch.Read(Stream, EvaluationPlan, int?)"/>,
/// so a large batch can be split into per-group blobs (<see cref="GroupBlob.ToBytes"/>) for fan-out
/// while holding one group in memory (about 136 ciphertexts, 350 MB at N = 16384) instead of all of them.
/// </summary>
public sealed class EncryptedBatchReader : KeyedBlob
{
    private readonly BlobReader _reader;
    private readonly byte[] _keyId;
    private int _next;

    // The batch's header, read and checked by Open; the groups follow on the reader.
    private EncryptedBatchReader(BlobReader reader, EvaluationPlan plan, byte[] keyId, int records, int groups)
        : base(plan, records, keyId) => (_reader, _keyId, GroupCount) = (reader, keyId, groups);

    public int GroupCount { get; }

    /// <summary>Reads and checks the header (magic, version, parameter hash, key id, record count against the limit, layout, group count).</summary>
    /// <exception cref="HeFormatException">Anything wrong in the header.</exception>
    public static EncryptedBatchReader Open(Stream stream, EvaluationPlan plan, int? maxRecords = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var limit = maxRecords ?? plan.MaxRecords;
        var r = new BlobReader(stream, "encrypted batch");
        var keyId = r.ReadKeyedHeader(BlobFormat.Kind.Batch, plan);
        var records = r.ReadInt32InRange("record count", 0, int.MaxValue);
        if (records == 0) throw new HeFormatException("encrypted batch: no records");
        if (records > limit) throw new HeFormatException($"encrypted batch: too many records, {records} exceeds the limit of {limit}").With(InferenceErrors.TooManyRecords);
        var features = r.ReadInt32InRange("features", 1, 4096);
        var steps = r.ReadInt32InRange("steps", 1, 64);
        if (features != plan.Features || steps != plan.Steps)
            throw new HeFormatException($"encrypted batch: layout {steps} steps × {features} features, the model expects {plan.Steps} × {plan.Features}");
        var groupCount = r.ReadGroupCount(records, plan.SlotsPerCiphertext);
        return new EncryptedBatchReader(r, plan, keyId, records, groupCount);
    }

    /// <summary>The next group, fully validated.</summary>
    /// <exception cref="HeFormatException">Malformed group.</exception>
    /// <exception cref="InvalidOperationException">All groups were read.</exception>
    public CiphertextGroup ReadGroup()
    {
        if (_next >= GroupCount) throw new InvalidOperationException($"all {GroupCount} groups were read");
        var group = CiphertextGroup.ReadBody(_reader, Plan, _keyId, maxIndex: GroupCount - 1, expectedIndex: _next);
        _reader.CheckGroupRecords(_next, group.RecordCount, RecordCount, Plan.SlotsPerCiphertext);
        _next++;
        return group;
    }

    /// <summary>Checks that every group was read and nothing follows.</summary>
    /// <exception cref="HeFormatException">Trailing bytes.</exception>
    public void Finish()
    {
        if (_next != GroupCount) throw new InvalidOperationException($"{GroupCount - _next} groups were not read");
        _reader.ExpectEnd();
    }
}
