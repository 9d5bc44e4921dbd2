namespace Serverless.Functions.Inference.Services;

/// <summary>Audit actions of encrypted inference; every refusal is one <see cref="AuditOutcome.Denied"/> entry with its reason.</summary>
public static class InferenceAuditActions
{
    public const string ModelPublish = "inference.model.publish";
    public const string ModelEntitle = "inference.model.entitle";
    public const string KeysRegister = "inference.keys.register";
    public const string BatchSubmit = "inference.batch.submit";
    public const string BatchDuplicate = "inference.batch.duplicate";
    public const string BatchRefused = "inference.batch.refused";
    public const string BatchComplete = "inference.batch.complete";
    public const string ResultRead = "inference.result.read";
}

/// <summary>Thin helper over <see cref="IAuditLog"/> so every inference entry names its resource the same way.</summary>
public sealed class InferenceAudit(IAuditLog log)
{
    public static string BatchResource(string tenant, string batchId) => $"batch/{tenant}/{batchId}";

    public Task RefusedAsync(string actor, string resource, string code, string reason, string? requestId = null) =>
        log.AppendAsync(new AuditEvent(actor, InferenceAuditActions.BatchRefused, resource, AuditOutcome.Denied, requestId, $"{code}: {reason}"));

    public Task RecordAsync(string actor, string action, string resource, AuditOutcome outcome, string? detail = null, string? requestId = null) =>
        log.AppendAsync(new AuditEvent(actor, action, resource, outcome, requestId, detail));
}
