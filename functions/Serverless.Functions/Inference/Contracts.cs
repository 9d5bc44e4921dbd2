using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference;

/// <summary>
/// One batch as the orchestration sees it (its input): who submitted what, never the token nor a
/// ciphertext. <see cref="Channel"/> is "queue" or "http".
/// </summary>
public sealed record BatchRequest(string BatchId, string Tenant, string ModelVersion, string Blob, string Sha256, string SubmittedBy,
    string Channel, string? MessageId = null);

/// <summary>What the validate activity found: the blob version it checked and the ciphertext groups to evaluate.</summary>
public sealed record BatchValidation(bool Accepted, string? ErrorCode, string? Reason, string ETag, int Records, int Groups,
    BatchOutcome? AlreadyDone = null)
{
    public static BatchValidation Refused(string code, string reason) => new(false, code, reason, "", 0, 0);
}

/// <summary>Input of one evaluation activity: one ciphertext group of a validated batch (blob ids, not ciphertexts).</summary>
public sealed record GroupWork(BatchRequest Batch, string ETag, int Group);

/// <summary>Input of the store activity: the per-group result blobs to join into the partner's result.</summary>
public sealed record ResultAssembly(BatchRequest Batch, int Records, IReadOnlyList<string> GroupResults);

/// <summary>How a batch ended: <see cref="BatchStatus.Completed"/> with the encrypted result blob, or refused with the reason.</summary>
public sealed record BatchOutcome(string BatchId, string Tenant, string Status, string? ErrorCode, string? Reason,
    string? ResultBlob, string? ResultSha256, long ResultBytes, int Records, int Groups);

/// <summary>
/// What a refused <c>partner-batches</c> message becomes on <c>partner-batches-poison</c>: the reason with the
/// original body (its token redacted), so an operator can see why without re-running it.
/// </summary>
public sealed record PoisonMessage(string Queue, string MessageId, int DequeueCount, DateTimeOffset InsertedAt, DateTimeOffset FailedAt,
    string LastError, byte[] Body)
{
    public static string PoisonQueueName(string queue) => queue + "-poison";
}
