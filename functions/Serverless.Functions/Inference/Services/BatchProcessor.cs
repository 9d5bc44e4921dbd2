using Microsoft.Extensions.Options;
using Serverless.Inference;
using Serverless.Privacy.Serialization;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// The orchestration's work, one method per activity. Validation reads the whole batch once (size,
/// SHA-256, parameter hash, layout, every ciphertext, the key registration and its owner) and splits
/// it into one blob per ciphertext group, so each evaluation activity reads only its own group; the
/// history carries blob names and counts, never a ciphertext.
/// </summary>
public sealed class BatchProcessor(InferenceBlobs blobs, ModelCatalog catalog, PartnerKeyStore keys, InferenceAudit audit, IQueueStore queues,
    IOptions<InferenceOptions> options, TimeProvider time, ILogger<BatchProcessor> logger, PartnerQuota quota)
{
    private static string InputGroupBlob(string tenant, string batchId, int group) => $"{tenant}/{batchId}/input/{group:D5}";
    private static string OutcomeBlob(string tenant, string batchId) => $"{tenant}/{batchId}/outcome.json";

    /// <summary>
    /// Validates a batch. <paramref name="split"/> (the orchestration's validate activity) also writes the
    /// per-group input blobs; the HTTP pre-check only validates. A batch whose result exists already is
    /// answered with that result (<see cref="BatchValidation.AlreadyDone"/>), never recomputed.
    /// </summary>
    internal async Task<BatchValidation> ValidateAsync(BatchRequest batch, CancellationToken cancellationToken, bool split = false)
    {
        if (split && await ReadOutcomeAsync(batch.Tenant, batch.BatchId, cancellationToken) is { } done)
            return new BatchValidation(true, null, null, "", done.Records, done.Groups, done);

        var model = await catalog.GetAsync(batch.ModelVersion, cancellationToken);
        if (model is null) return BatchValidation.Refused(RefusalCodes.UnknownModel, $"model version '{batch.ModelVersion}' has not been published for inference");
        // Checked on every batch, not only at key registration: a revoked tenant's registered keys score nothing more.
        if (!(await catalog.GetEntitlementAsync(batch.ModelVersion, cancellationToken)).Admits(batch.Tenant))
            return BatchValidation.Refused(RefusalCodes.NotEntitled, $"tenant '{batch.Tenant}' is not entitled to model version '{batch.ModelVersion}'");
        var plan = model.Plan;
        var registration = await keys.GetRegistrationAsync(batch.Tenant, batch.ModelVersion, cancellationToken);
        if (registration is null)
            return BatchValidation.Refused(RefusalCodes.KeysNotRegistered,
                $"tenant '{batch.Tenant}' has registered no evaluation keys for model version '{batch.ModelVersion}' (PUT /api/partners/{batch.Tenant}/keys/{batch.ModelVersion} first)");
        if (!InferenceBlobs.IsTenantBlob(batch.Tenant, batch.Blob))
            return BatchValidation.Refused(RefusalCodes.Forbidden, $"blob '{batch.Blob}' is not under tenant '{batch.Tenant}'");

        await using var download = await blobs.Batches.GetAsync(batch.Blob, cancellationToken);
        if (download is null) return BatchValidation.Refused(RefusalCodes.BlobMissing, $"blob '{InferenceBlobs.BatchesContainer}/{batch.Blob}' does not exist");
        if (download.Properties.Length > options.Value.MaxBatchBytes)
            return BatchValidation.Refused(RefusalCodes.BatchTooLarge, $"the batch is {download.Properties.Length} bytes, over the limit of {options.Value.MaxBatchBytes}");

        // One pass over the blob, one group in memory at a time; the SHA-256 is computed on the way and
        // checked once the reader has seen the last byte.
        using var hashing = new HashingReadStream(download.Content, options.Value.MaxBatchBytes);
        var written = 0;
        try
        {
            PartnerKeyStore.CheckParameters(hashing.Peek(39), plan, "the batch's ciphertexts");
            var reader = EncryptedBatchReader.Open(new BufferedStream(hashing, 1 << 20), plan);
            var keyId = Convert.ToHexStringLower(reader.KeyId.Span);
            if (keyId != registration.KeyId)
            {
                var owner = await keys.ReadOwnerAsync(keyId, cancellationToken);
                return owner is not null && owner.Tenant != batch.Tenant
                    ? BatchValidation.Refused(RefusalCodes.ForeignKeys, $"the batch is encrypted under keys registered by another partner (key id {keyId[..16]}…); encrypt under your own keys")
                    : BatchValidation.Refused(RefusalCodes.KeysNotRegistered,
                        $"the batch is encrypted under keys (key id {keyId[..16]}…) other than the ones tenant '{batch.Tenant}' registered for '{batch.ModelVersion}' ({registration.KeyId[..16]}…)");
            }
            for (var g = 0; g < reader.GroupCount; g++)
            {
                var group = reader.ReadGroup();
                if (!split) continue;
                using var groupBlob = new MemoryStream();
                group.WriteTo(groupBlob);
                groupBlob.Position = 0;
                await blobs.Results.PutAsync(InputGroupBlob(batch.Tenant, batch.BatchId, g), groupBlob, cancellationToken: cancellationToken);
                written++;
            }
            reader.Finish();
            var sha = hashing.HashHex();
            if (sha != batch.Sha256)
            {
                await DeleteInputGroupsAsync(batch, written, cancellationToken);
                return BatchValidation.Refused(RefusalCodes.DigestMismatch, $"the blob's SHA-256 is {sha}, the submission said {batch.Sha256} (changed or corrupted after submission)");
            }
            // The orchestration's validation (the one that leads to an evaluation) charges the partner's daily cap.
            if (split && await quota.ChargeAsync(batch.Tenant, batch.BatchId, reader.RecordCount, cancellationToken) is { } over)
            {
                await DeleteInputGroupsAsync(batch, written, cancellationToken);
                return BatchValidation.Refused(RefusalCodes.QuotaExceeded, over);
            }
            logger.LogInformation("Batch {BatchId} of {Tenant}: {Records} records in {Groups} groups validated", batch.BatchId, batch.Tenant, reader.RecordCount, reader.GroupCount);
            return new BatchValidation(true, null, null, download.Properties.ETag, reader.RecordCount, reader.GroupCount);
        }
        catch (InferenceRefusedException e)
        {
            return BatchValidation.Refused(e.Code, e.Message);
        }
        catch (HeFormatException e)
        {
            await DeleteInputGroupsAsync(batch, written, cancellationToken);
            // A blob that changed after submission is named as such, not as a malformed batch.
            var sha = await hashing.DrainAndHashHexAsync(cancellationToken);
            if (sha != batch.Sha256)
                return BatchValidation.Refused(RefusalCodes.DigestMismatch, $"the blob's SHA-256 is {sha}, the submission said {batch.Sha256} (changed or corrupted after submission)");
            var code = InferenceErrors.ReasonOf(e) == InferenceErrors.TooManyRecords ? RefusalCodes.BatchTooLarge : RefusalCodes.MalformedBatch;
            return BatchValidation.Refused(code, e.Message);
        }
    }

    private async Task DeleteInputGroupsAsync(BatchRequest batch, int count, CancellationToken cancellationToken)
    {
        for (var g = 0; g < count; g++) await blobs.Results.DeleteAsync(InputGroupBlob(batch.Tenant, batch.BatchId, g), cancellationToken: cancellationToken);
    }

    /// <summary>Evaluates one ciphertext group with the tenant's evaluation keys; returns the group result's blob name.</summary>
    internal async Task<string> EvaluateGroupAsync(GroupWork work, CancellationToken cancellationToken)
    {
        var batch = work.Batch;
        var model = await catalog.GetAsync(batch.ModelVersion, cancellationToken)
            ?? throw new InvalidOperationException($"model version '{batch.ModelVersion}' vanished");
        var registration = await keys.GetRegistrationAsync(batch.Tenant, batch.ModelVersion, cancellationToken)
            ?? throw new InvalidOperationException($"the key registration of {batch.Tenant}/{batch.ModelVersion} vanished");
        var evaluationKeys = await keys.LoadAsync(registration, model.Plan, cancellationToken);
        var input = await InferenceBlobs.ReadAllAsync(blobs.Results, InputGroupBlob(batch.Tenant, batch.BatchId, work.Group), long.MaxValue, cancellationToken)
            ?? throw new InvalidOperationException($"input group {work.Group} of batch {batch.BatchId} is missing");
        var group = CiphertextGroup.Read(input, model.Plan);
        var result = new EncryptedEvaluator(model, evaluationKeys).EvaluateGroup(group, cancellationToken);
        var name = InferenceBlobs.GroupResultBlob(batch.Tenant, batch.BatchId, work.Group);
        await blobs.Results.PutAsync(name, new MemoryStream(result.ToBytes(), writable: false), cancellationToken: cancellationToken);
        return name;
    }

    /// <summary>Joins the group results into the partner's result blob, records the outcome, removes the intermediate blobs.</summary>
    internal async Task<BatchOutcome> StoreResultAsync(ResultAssembly assembly, CancellationToken cancellationToken)
    {
        var batch = assembly.Batch;
        if (await ReadOutcomeAsync(batch.Tenant, batch.BatchId, cancellationToken) is { } done) return done;
        var model = await catalog.GetAsync(batch.ModelVersion, cancellationToken)
            ?? throw new InvalidOperationException($"model version '{batch.ModelVersion}' vanished");
        var parts = new List<EncryptedGroupResult>(assembly.GroupResults.Count);
        foreach (var name in assembly.GroupResults)
        {
            var bytes = await InferenceBlobs.ReadAllAsync(blobs.Results, name, long.MaxValue, cancellationToken)
                ?? throw new InvalidOperationException($"group result '{name}' is missing");
            parts.Add(EncryptedGroupResult.Read(bytes, model.Plan));
        }
        var joined = EncryptedResult.Join(model.Plan, parts).ToBytes();
        var resultBlob = InferenceBlobs.ResultBlob(batch.Tenant, batch.BatchId);
        await blobs.Results.PutAsync(resultBlob, new MemoryStream(joined, writable: false), cancellationToken: cancellationToken);
        var outcome = new BatchOutcome(batch.BatchId, batch.Tenant, BatchStatus.Completed, null, null, resultBlob, InferenceBlobs.Sha256Hex(joined), joined.Length,
            assembly.Records, assembly.GroupResults.Count);
        await blobs.Results.PutAsync(OutcomeBlob(batch.Tenant, batch.BatchId), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(outcome, JsonSerializerOptions.Web)),
            cancellationToken: cancellationToken);
        for (var g = 0; g < assembly.GroupResults.Count; g++)
        {
            await blobs.Results.DeleteAsync(InputGroupBlob(batch.Tenant, batch.BatchId, g), cancellationToken: cancellationToken);
            await blobs.Results.DeleteAsync(assembly.GroupResults[g], cancellationToken: cancellationToken);
        }
        await audit.RecordAsync(batch.SubmittedBy, InferenceAuditActions.BatchComplete, InferenceAudit.BatchResource(batch.Tenant, batch.BatchId), AuditOutcome.Success,
            $"{assembly.Records} records, {assembly.GroupResults.Count} groups, result sha256 {outcome.ResultSha256}");
        Serverless.Telemetry.ServerlessTelemetry.InferenceBatches.Add(1);
        Serverless.Telemetry.ServerlessTelemetry.InferenceRecords.Add(assembly.Records);
        return outcome;
    }

    /// <summary>
    /// Records a refusal: audited, and for a queue submission a copy of the submission (without token)
    /// goes to <c>partner-batches-poison</c> with the reason, so operators see it beside other dead letters.
    /// The batch blob is kept.
    /// </summary>
    internal async Task<BatchOutcome> RefuseAsync(BatchRefusal refusal, CancellationToken cancellationToken)
    {
        var batch = refusal.Batch;
        await audit.RefusedAsync(batch.SubmittedBy, InferenceAudit.BatchResource(batch.Tenant, batch.BatchId), refusal.Code, refusal.Reason, batch.MessageId);
        if (batch.Channel == "queue")
        {
            var poison = new PoisonMessage(InferenceBlobs.BatchQueue, batch.MessageId ?? "", 1, time.GetUtcNow(), time.GetUtcNow(), $"{refusal.Code}: {refusal.Reason}",
                JsonSerializer.SerializeToUtf8Bytes(batch, JsonSerializerOptions.Web));
            await queues.PutAsync(PoisonMessage.PoisonQueueName(InferenceBlobs.BatchQueue), JsonSerializer.SerializeToUtf8Bytes(poison, JsonSerializerOptions.Web),
                cancellationToken: cancellationToken);
        }
        logger.LogWarning("Batch {BatchId} of {Tenant} refused: {Code}: {Reason}", batch.BatchId, batch.Tenant, refusal.Code, refusal.Reason);
        return new BatchOutcome(batch.BatchId, batch.Tenant, BatchStatus.Refused, refusal.Code, refusal.Reason, null, null, 0, 0, 0);
    }

    private async Task<BatchOutcome?> ReadOutcomeAsync(string tenant, string batchId, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Results, OutcomeBlob(tenant, batchId), 64 * 1024, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<BatchOutcome>(bytes, JsonSerializerOptions.Web);
    }
}
