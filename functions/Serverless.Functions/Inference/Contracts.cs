using System.Text.RegularExpressions;

namespace Serverless.Functions.Inference;

/// <summary>
/// The message a partner puts on the <c>partner-batches</c> queue (JSON, far below the 64 KB a queue
/// message may carry): it names the encrypted batch blob the partner uploaded to container
/// <c>partner-batches</c> under its own tenant prefix, with the blob's SHA-256, and carries the
/// partner's bearer token, because a queue has no request headers.
/// </summary>
public sealed record PartnerBatchMessage(string BatchId, string Tenant, string ModelVersion, string Blob, string Sha256, string Token, string? TraceParent = null);

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

/// <summary>Values of <see cref="BatchOutcome.Status"/>.</summary>
public static class BatchStatus
{
    public const string Completed = "Completed";
    public const string Refused = "Refused";
}

/// <summary>Stable codes of refusals (ProblemDetails <c>type</c> suffix, audit detail, poison reason prefix).</summary>
public static class RefusalCodes
{
    public const string BadMessage = "bad-message";
    public const string Unauthenticated = "unauthenticated";
    public const string Forbidden = "forbidden";
    public const string UnknownModel = "unknown-model";
    /// <summary>The partner's tenant is not among the model version's entitled tenants.</summary>
    public const string NotEntitled = "not-entitled";
    public const string KeysNotRegistered = "keys-not-registered";
    public const string ForeignKeys = "foreign-keys";
    public const string WrongParameters = "wrong-parameters";
    public const string MalformedBatch = "malformed-batch";
    public const string BatchTooLarge = "batch-too-large";
    public const string DigestMismatch = "digest-mismatch";
    public const string BlobMissing = "blob-missing";
    public const string Conflict = "batch-id-conflict";
    public const string EvaluationFailed = "evaluation-failed";
    public const string QuotaExceeded = "quota-exceeded";
    /// <summary>Every delivery of a queue message failed (storage, the task hub): poisoned on the last one.</summary>
    public const string ProcessingFailed = "processing-failed";
}

/// <summary>Answer of a partner's key registration.</summary>
public sealed record KeyRegistration(string Tenant, string ModelVersion, string KeyId, string ParametersHash, long Bytes, DateTimeOffset RegisteredAt, string RegisteredBy);

/// <summary>Answer of a submission: where to poll, and whether it was a duplicate answered from the first run.</summary>
public sealed record SubmissionReceipt(string BatchId, string Tenant, string InstanceId, string StatusUri, bool Duplicate);

/// <summary>What partners download to encrypt for a model version (published by an operator).</summary>
public sealed record ModelVersionInfo(string ModelVersion, string PublishedBy, DateTimeOffset PublishedAt, string ParametersHash, string PlanSha256);

/// <summary>Identifiers that end up in blob names, instance ids and URLs: validated once, here.</summary>
public static partial class InferenceNames
{
    /// <summary>Tenants, batch ids and model versions: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.</summary>
    public static bool IsValidId(string? value) => value is not null && IdPattern().IsMatch(value);

    /// <summary>The orchestration of a batch: one per (tenant, batch id), so a replayed message finds the first run.</summary>
    public static string InstanceId(string tenant, string batchId) => $"partner-batch:{tenant}:{batchId}";

    public static bool IsSha256Hex(string? value) => value is { Length: 64 } && Sha256Pattern().IsMatch(value);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Pattern();
}

/// <summary>
/// What a refused <c>partner-batches</c> message becomes on <c>partner-batches-poison</c>: the reason with the
/// original body (its token redacted), so an operator can see why without re-running it.
/// </summary>
public sealed record PoisonMessage(string Queue, string MessageId, int DequeueCount, DateTimeOffset InsertedAt, DateTimeOffset FailedAt,
    string LastError, byte[] Body)
{
    public static string PoisonQueueName(string queue) => queue + "-poison";
}
