using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>How a submission was taken: started, a duplicate of an earlier one (same content), or a conflict (same id, other content).</summary>
internal enum SubmissionKind
{
    Started,
    Duplicate,
    Conflict,
}

internal sealed record SubmissionResult(SubmissionKind Kind, string InstanceId, string? Detail = null);

/// <summary>
/// Starts one orchestration per batch, keyed by (tenant, batch id). A batch id is used once: the same
/// content again (a replayed queue message, a retried POST) is answered by the first run, never
/// recomputed; other content under a used id is a conflict. Both queue and HTTP submissions come here.
/// </summary>
public sealed class BatchSubmissions(InferenceBlobs blobs, InferenceAudit audit, ILogger<BatchSubmissions> logger)
{
    public const string Orchestrator = "PartnerBatch";

    internal async Task<SubmissionResult> SubmitAsync(DurableTaskClient client, BatchRequest request, CancellationToken cancellationToken)
    {
        var instanceId = InferenceNames.InstanceId(request.Tenant, request.BatchId);
        var resource = InferenceAudit.BatchResource(request.Tenant, request.BatchId);
        for (var attempt = 0; ; attempt++)
        {
            var existing = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, cancellationToken);
            if (existing is not null) return await AnswerFromFirstAsync(request, existing.ReadInputAs<BatchRequest>(), instanceId, resource);

            // A refusal decided before any orchestration (bad token, wrong role) also uses the id up.
            if (await blobs.Results.GetAsync(InferenceBlobs.RefusalBlob(request.Tenant, request.BatchId), cancellationToken) is { } refusal)
            {
                await refusal.DisposeAsync();
                await audit.RecordAsync(request.SubmittedBy, InferenceAuditActions.BatchDuplicate, resource, AuditOutcome.Success, "answered by the earlier refusal");
                return new SubmissionResult(SubmissionKind.Duplicate, instanceId, "the batch id was refused earlier");
            }

            try
            {
                await client.ScheduleNewOrchestrationInstanceAsync(Orchestrator, request, new StartOrchestrationOptions(instanceId), cancellationToken);
                await audit.RecordAsync(request.SubmittedBy, InferenceAuditActions.BatchSubmit, resource, AuditOutcome.Success,
                    $"via {request.Channel}, model {request.ModelVersion}, sha256 {request.Sha256}");
                logger.LogInformation("Batch {BatchId} of {Tenant} submitted via {Channel} as {InstanceId}", request.BatchId, request.Tenant, request.Channel, instanceId);
                return new SubmissionResult(SubmissionKind.Started, instanceId);
            }
            catch (Exception e) when (attempt == 0 && e is not OperationCanceledException)
            {
                // Another submission of the same id won the race (the backend refuses the id): answer from it. Anything
                // else fails the same way again and is thrown then.
                logger.LogInformation("Starting {InstanceId} failed ({Error}); looking for a run that won the race", instanceId, e.GetType().Name);
            }
        }
    }

    private async Task<SubmissionResult> AnswerFromFirstAsync(BatchRequest request, BatchRequest? first, string instanceId, string resource)
    {
        if (first is null || !string.Equals(first.Sha256, request.Sha256, StringComparison.Ordinal)
                          || !string.Equals(first.ModelVersion, request.ModelVersion, StringComparison.Ordinal))
        {
            var reason = $"batch id '{request.BatchId}' was already used for other content (sha256 {first?.Sha256 ?? "?"}, model {first?.ModelVersion ?? "?"}); use a new batch id";
            await audit.RefusedAsync(request.SubmittedBy, resource, RefusalCodes.Conflict, reason);
            return new SubmissionResult(SubmissionKind.Conflict, instanceId, reason);
        }
        await audit.RecordAsync(request.SubmittedBy, InferenceAuditActions.BatchDuplicate, resource, AuditOutcome.Success,
            $"via {request.Channel}: answered by the first submission (via {first.Channel})");
        return new SubmissionResult(SubmissionKind.Duplicate, instanceId);
    }

    /// <summary>Records a refusal decided before any orchestration, so the partner's poll answers it (never overwrites an earlier record).</summary>
    public async Task RecordEarlyRefusalAsync(string tenant, string batchId, string code, string reason, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new EarlyRefusal(code, reason), JsonSerializerOptions.Web);
        try
        {
            await blobs.Results.PutAsync(InferenceBlobs.RefusalBlob(tenant, batchId), new MemoryStream(body), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
        }
    }

    internal async Task<EarlyRefusal?> ReadEarlyRefusalAsync(string tenant, string batchId, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Results, InferenceBlobs.RefusalBlob(tenant, batchId), 64 * 1024, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<EarlyRefusal>(bytes, JsonSerializerOptions.Web);
    }
}

internal sealed record EarlyRefusal(string Code, string Reason);
