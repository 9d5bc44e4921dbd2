using System.Text.RegularExpressions;

namespace Serverless.Contracts.Inference;

/// <summary>
/// The message a partner puts on the <c>partner-batches</c> queue (JSON, far below the 64 KB a queue
/// message may carry): it names the encrypted batch blob the partner uploaded to container
/// <c>partner-batches</c> under its own tenant prefix, with the blob's SHA-256, and carries the
/// partner's bearer token, because a queue has no request headers.
/// </summary>
public sealed record PartnerBatchMessage(string BatchId, string Tenant, string ModelVersion, string Blob, string Sha256, string Token, string? TraceParent = null);

/// <summary>Answer of a partner's key registration.</summary>
public sealed record KeyRegistration(string Tenant, string ModelVersion, string KeyId, string ParametersHash, long Bytes, DateTimeOffset RegisteredAt, string RegisteredBy);

/// <summary>Answer of a submission: where to poll, and whether it was a duplicate answered from the first run.</summary>
public sealed record SubmissionReceipt(string BatchId, string Tenant, string InstanceId, string StatusUri, bool Duplicate);

/// <summary>What partners download to encrypt for a model version (published by an operator).</summary>
public sealed record ModelVersionInfo(string ModelVersion, string PublishedBy, DateTimeOffset PublishedAt, string ParametersHash, string PlanSha256);

/// <summary>Values of a batch outcome's status.</summary>
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

/// <summary>The encrypted-inference routes under <c>/api</c>: the templates the app's triggers declare, and the paths clients build.</summary>
public static class InferenceRoutes
{
    /// <summary>The queue a partner with storage access posts <see cref="PartnerBatchMessage"/>s to, and the container of its batch blobs.</summary>
    public const string PartnerBatchesQueue = "partner-batches";

    public static class Templates
    {
        public const string Model = "inference/models/{version}";
        public const string ModelTenants = "inference/models/{version}/tenants";
        public const string PartnerKeys = "partners/{tenant}/keys/{version}";
        public const string PartnerBatch = "partners/{tenant}/batches/{batchId}";
    }

    public static string Model(string version) => $"api/inference/models/{Uri.EscapeDataString(version)}";

    public static string PartnerKeys(string tenant, string version) =>
        $"api/partners/{Uri.EscapeDataString(tenant)}/keys/{Uri.EscapeDataString(version)}";

    public static string PartnerBatch(string tenant, string batchId) =>
        $"api/partners/{Uri.EscapeDataString(tenant)}/batches/{Uri.EscapeDataString(batchId)}";

    /// <summary>A submission over HTTP: the batch path with the model version it was encrypted for.</summary>
    public static string PartnerBatchSubmission(string tenant, string batchId, string version) =>
        $"{PartnerBatch(tenant, batchId)}?modelVersion={Uri.EscapeDataString(version)}";
}
