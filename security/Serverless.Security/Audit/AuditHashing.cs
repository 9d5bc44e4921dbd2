using System.Buffers.Binary;

namespace Serverless.Security.Audit;

/// <summary>
/// The canonical encodings that are hashed and signed. Every field has a fixed position and an
/// explicit length, so no two different entries encode to the same bytes:
/// <code>
/// entry:      "serverless-audit-entry-v1" | u64 sequence | i64 unix-ms | str actor | str action | str resource
///             | u8 outcome | str request id | str detail | 32-byte previous hash        (str = u32 length + UTF-8)
/// checkpoint: "serverless-audit-checkpoint-v1" | u64 sequence | 32-byte head hash | i64 unix-ms
/// </code>
/// hash = SHA-256(entry encoding); the first entry's previous hash is 32 zero bytes.
/// </summary>
public static class AuditHashing
{
    public const int HashLength = 32;
    private static readonly byte[] EntryDomain = "serverless-audit-entry-v1"u8.ToArray();
    private static readonly byte[] CheckpointDomain = "serverless-audit-checkpoint-v1"u8.ToArray();

    public static byte[] Genesis => new byte[HashLength];

    public static byte[] ComputeHash(long sequence, DateTimeOffset timestamp, string actor, string action, string resource,
        AuditOutcome outcome, string requestId, string detail, ReadOnlySpan<byte> previousHash)
    {
        if (previousHash.Length != HashLength) throw new ArgumentException("The previous hash is 32 bytes.", nameof(previousHash));
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> number = stackalloc byte[8];
        sha.AppendData(EntryDomain);
        BinaryPrimitives.WriteInt64BigEndian(number, sequence);
        sha.AppendData(number);
        BinaryPrimitives.WriteInt64BigEndian(number, timestamp.ToUnixTimeMilliseconds());
        sha.AppendData(number);
        AppendString(sha, actor);
        AppendString(sha, action);
        AppendString(sha, resource);
        sha.AppendData([(byte)outcome]);
        AppendString(sha, requestId);
        AppendString(sha, detail);
        sha.AppendData(previousHash);
        return sha.GetHashAndReset();
    }

    public static byte[] ComputeHash(AuditEntry e) =>
        ComputeHash(e.Sequence, e.Timestamp, e.Actor, e.Action, e.Resource, e.Outcome, e.RequestId, e.Detail, e.PreviousHash);

    /// <summary>The SHA-256 digest a checkpoint signature covers.</summary>
    public static byte[] CheckpointDigest(long sequence, ReadOnlySpan<byte> headHash, DateTimeOffset timestamp)
    {
        var buffer = new byte[CheckpointDomain.Length + 8 + HashLength + 8];
        CheckpointDomain.CopyTo(buffer, 0);
        var at = CheckpointDomain.Length;
        BinaryPrimitives.WriteInt64BigEndian(buffer.AsSpan(at), sequence);
        headHash.CopyTo(buffer.AsSpan(at + 8));
        BinaryPrimitives.WriteInt64BigEndian(buffer.AsSpan(at + 8 + HashLength), timestamp.ToUnixTimeMilliseconds());
        return SHA256.HashData(buffer);
    }

    private static void AppendString(IncrementalHash sha, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)bytes.Length);
        sha.AppendData(length);
        sha.AppendData(bytes);
    }
}
