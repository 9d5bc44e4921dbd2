using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;

namespace Serverless.Inference;

/// <summary>
/// Up to <see cref="EvaluationPlan.SlotsPerCiphertext"/> records, encrypted record-per-slot: one
/// ciphertext per (step t, feature f) holding that value of every record in its slots, then one
/// ciphertext per step holding the mask (1 real, 0 padding). A record's n real visits sit at steps
/// T − n .. T − 1 (left padding with zeros). Input order: index t·Features + f for values,
/// Steps·Features + t for masks. The unit an evaluation activity works on.
/// </summary>
public sealed class CiphertextGroup
{
    internal CiphertextGroup(EvaluationPlan plan, int index, int recordCount, byte[] keyId, Ciphertext[] inputs)
    {
        Plan = plan;
        Index = index;
        RecordCount = recordCount;
        KeyId = keyId;
        Inputs = inputs;
    }

    public EvaluationPlan Plan { get; }

    /// <summary>Position of this group in its batch (records Index·slots .. Index·slots + RecordCount − 1).</summary>
    public int Index { get; }

    /// <summary>Records in this group (the rest of the slots are zero).</summary>
    public int RecordCount { get; }

    /// <summary>Key id (<see cref="EvaluationKeys.KeyId"/>) of the keys the records were encrypted under.</summary>
    public ReadOnlyMemory<byte> KeyId { get; }

    internal Ciphertext[] Inputs { get; }

    /// <summary>This group alone as a blob (header, index, record count, ciphertexts), for fan-out over separate blobs.</summary>
    public byte[] ToBytes()
    {
        using var ms = new MemoryStream();
        WriteTo(ms);
        return ms.ToArray();
    }

    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteHeader(stream, BlobFormat.Kind.Group, Plan.ParameterHash.Span);
        stream.Write(KeyId.Span);
        WriteBody(stream);
    }

    internal void WriteBody(Stream stream)
    {
        BlobFormat.WriteInt32(stream, Index);
        BlobFormat.WriteInt32(stream, RecordCount);
        foreach (var ct in Inputs) BlobFormat.WriteBlob(stream, CkksSerializer.Save(ct));
    }

    /// <summary>Reads one group written by <see cref="ToBytes"/> and validates it against the plan.</summary>
    /// <exception cref="HeFormatException">Truncated, other parameters, wrong layout, or ciphertexts not fresh at the top level.</exception>
    public static CiphertextGroup Read(ReadOnlySpan<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan));
    }

    /// <inheritdoc cref="Read(ReadOnlySpan{byte}, EvaluationPlan)"/>
    public static CiphertextGroup Read(Stream stream, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var r = new BlobReader(stream, "ciphertext group");
        r.ReadHeader(BlobFormat.Kind.Group, plan);
        var keyId = r.ReadBytes(32, "key id");
        var g = ReadBody(r, plan, keyId, maxIndex: plan.MaxGroups - 1, expectedIndex: null, recordLimit: plan.SlotsPerCiphertext);
        r.ExpectEnd();
        return g;
    }

    internal static CiphertextGroup ReadBody(BlobReader r, EvaluationPlan plan, byte[] keyId, int maxIndex, int? expectedIndex, int recordLimit)
    {
        var index = r.ReadInt32InRange("group index", 0, maxIndex);
        if (expectedIndex is { } e && index != e) throw new HeFormatException($"ciphertext group: index {index} where {e} was expected");
        var records = r.ReadInt32InRange("group record count", 1, recordLimit);
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
public sealed class EncryptedBatch
{
    internal EncryptedBatch(EvaluationPlan plan, int recordCount, byte[] keyId, CiphertextGroup[] groups)
    {
        Plan = plan;
        RecordCount = recordCount;
        KeyId = keyId;
        Groups = groups;
    }

    public EvaluationPlan Plan { get; }

    public int RecordCount { get; }

    /// <summary>Key id of the partner keys the batch was encrypted under (<see cref="EvaluationKeys.KeyId"/>).</summary>
    public ReadOnlyMemory<byte> KeyId { get; }

    public string KeyIdHex => Convert.ToHexString(KeyId.Span);

    public IReadOnlyList<CiphertextGroup> Groups { get; }

    public byte[] ToBytes()
    {
        using var ms = new MemoryStream();
        WriteTo(ms);
        return ms.ToArray();
    }

    /// <summary>Layout: header, key id (32), record count, features, steps, group count (i32 each), then each group's body.</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteHeader(stream, BlobFormat.Kind.Batch, Plan.ParameterHash.Span);
        stream.Write(KeyId.Span);
        BlobFormat.WriteInt32(stream, RecordCount);
        BlobFormat.WriteInt32(stream, Plan.Features);
        BlobFormat.WriteInt32(stream, Plan.Steps);
        BlobFormat.WriteInt32(stream, Groups.Count);
        foreach (var g in Groups) g.WriteBody(stream);
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
    public static EncryptedBatch Read(ReadOnlySpan<byte> data, EvaluationPlan plan, int? maxRecords = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan, maxRecords));
    }
}

/// <summary>
/// Reads a batch blob one group at a time, with the same validation as <see cref="EncryptedBatch.Read(Stream, EvaluationPlan, int?)"/>,
/// so a large batch can be split into per-group blobs (<see cref="CiphertextGroup.ToBytes"/>) for fan-out
/// while holding one group in memory (about 136 ciphertexts, 350 MB at N = 16384) instead of all of them.
/// </summary>
public sealed class EncryptedBatchReader
{
    private readonly BlobReader _reader;
    private readonly byte[] _keyId;
    private int _next;

    private EncryptedBatchReader(BlobReader reader, EvaluationPlan plan, byte[] keyId, int records, int groups)
    {
        _reader = reader;
        Plan = plan;
        _keyId = keyId;
        RecordCount = records;
        GroupCount = groups;
    }

    public EvaluationPlan Plan { get; }

    public int RecordCount { get; }

    public int GroupCount { get; }

    public ReadOnlyMemory<byte> KeyId => _keyId;

    /// <summary>Reads and checks the header (magic, version, parameter hash, key id, record count against the limit, layout, group count).</summary>
    /// <exception cref="HeFormatException">Anything wrong in the header.</exception>
    public static EncryptedBatchReader Open(Stream stream, EvaluationPlan plan, int? maxRecords = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var limit = maxRecords ?? plan.MaxRecords;
        var r = new BlobReader(stream, "encrypted batch");
        r.ReadHeader(BlobFormat.Kind.Batch, plan);
        var keyId = r.ReadBytes(32, "key id");
        var records = r.ReadInt32InRange("record count", 0, int.MaxValue);
        if (records == 0) throw new HeFormatException("encrypted batch: no records");
        if (records > limit) throw new HeFormatException($"encrypted batch: too many records, {records} exceeds the limit of {limit}").With(InferenceErrors.TooManyRecords);
        var features = r.ReadInt32InRange("features", 1, 4096);
        var steps = r.ReadInt32InRange("steps", 1, 64);
        if (features != plan.Features || steps != plan.Steps)
            throw new HeFormatException($"encrypted batch: layout {steps} steps × {features} features, the model expects {plan.Steps} × {plan.Features}");
        var slots = plan.SlotsPerCiphertext;
        var expectedGroups = (records + slots - 1) / slots;
        var groupCount = r.ReadInt32InRange("group count", expectedGroups, expectedGroups);
        return new EncryptedBatchReader(r, plan, keyId, records, groupCount);
    }

    /// <summary>The next group, fully validated.</summary>
    /// <exception cref="HeFormatException">Malformed group.</exception>
    /// <exception cref="InvalidOperationException">All groups were read.</exception>
    public CiphertextGroup ReadGroup()
    {
        if (_next >= GroupCount) throw new InvalidOperationException($"all {GroupCount} groups were read");
        var slots = Plan.SlotsPerCiphertext;
        var g = _next;
        var inGroup = Math.Min(slots, RecordCount - g * slots);
        var group = CiphertextGroup.ReadBody(_reader, Plan, _keyId, maxIndex: GroupCount - 1, expectedIndex: g, recordLimit: slots);
        if (group.RecordCount != inGroup)
            throw new HeFormatException($"encrypted batch: group {g} declares {group.RecordCount} records, {inGroup} expected from the record count");
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
