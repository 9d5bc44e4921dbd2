namespace Serverless.Inference;

/// <summary>Records under one partner key, for one plan: what every inference blob (a group, a batch, their results, a batch being read) says of itself.</summary>
public abstract class KeyedBlob
{
    private protected KeyedBlob(EvaluationPlan plan, int recordCount, byte[] keyId) => (Plan, RecordCount, KeyId) = (plan, recordCount, keyId);

    public EvaluationPlan Plan { get; }

    /// <summary>Records held.</summary>
    public int RecordCount { get; }

    /// <summary>Key id (<see cref="EvaluationKeys.KeyId"/>) of the partner keys the records were encrypted under.</summary>
    public ReadOnlyMemory<byte> KeyId { get; }
}

/// <summary>
/// What a <see cref="CiphertextGroup"/> and its <see cref="EncryptedGroupResult"/> share: which records of
/// the batch they hold and under which keys. Written alone (header, key id, body) for fan-out over separate
/// blobs, or as a body inside its batch or result.
/// </summary>
public abstract class GroupBlob : KeyedBlob
{
    private protected GroupBlob(EvaluationPlan plan, int index, int recordCount, byte[] keyId)
        : base(plan, recordCount, keyId) => Index = index;

    /// <summary>Position in the batch: records Index·slots .. Index·slots + RecordCount − 1 (the rest of the slots are zero).</summary>
    public int Index { get; }

    /// <summary>This group alone as a blob (header, key id, index, record count, ciphertexts).</summary>
    public byte[] ToBytes() => BlobFormat.ToBytes(WriteTo);

    /// <inheritdoc cref="ToBytes"/>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteKeyedHeader(stream, StandaloneKind, Plan.ParameterHash.Span, KeyId.Span);
        WriteBody(stream);
    }

    internal void WriteBody(Stream stream)
    {
        BlobFormat.WriteInt32(stream, Index);
        BlobFormat.WriteInt32(stream, RecordCount);
        WriteCiphertexts(stream);
    }

    private protected abstract BlobFormat.Kind StandaloneKind { get; }

    private protected abstract void WriteCiphertexts(Stream stream);

    /// <summary>Reads a group written alone: header, key id, the body <paramref name="readBody"/> reads, nothing after.</summary>
    private protected static T ReadStandalone<T>(Stream stream, EvaluationPlan plan, BlobFormat.Kind kind, string what, Func<BlobReader, byte[], T> readBody)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var r = new BlobReader(stream, what);
        var keyId = r.ReadKeyedHeader(kind, plan);
        var g = readBody(r, keyId);
        r.ExpectEnd();
        return g;
    }
}

/// <summary>
/// What an <see cref="EncryptedBatch"/> and its <see cref="EncryptedResult"/> share: a record count under
/// one key id and one <typeparamref name="TGroup"/> per <see cref="EvaluationPlan.SlotsPerCiphertext"/> records.
/// </summary>
public abstract class BatchBlob<TGroup> : KeyedBlob
    where TGroup : GroupBlob
{
    private protected BatchBlob(EvaluationPlan plan, int recordCount, byte[] keyId, TGroup[] groups)
        : base(plan, recordCount, keyId) => Groups = groups;

    public IReadOnlyList<TGroup> Groups { get; }

    public byte[] ToBytes() => BlobFormat.ToBytes(WriteTo);

    /// <summary>Layout: header, key id (32), record count, the kind's layout fields, group count (i32 each), then each group's body.</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteKeyedHeader(stream, Kind, Plan.ParameterHash.Span, KeyId.Span);
        BlobFormat.WriteInt32(stream, RecordCount);
        WriteLayout(stream);
        BlobFormat.WriteInt32(stream, Groups.Count);
        foreach (var g in Groups) g.WriteBody(stream);
    }

    private protected abstract BlobFormat.Kind Kind { get; }

    /// <summary>Fields between the record count and the group count (none by default).</summary>
    private protected virtual void WriteLayout(Stream stream)
    {
    }
}
