using Serverless.Functions.Hosting;
using System.Security.Claims;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Functions.Inference.Services;
using Serverless.Security.Hosting;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference;

/// <summary>
/// Batch submission (queue <c>partner-batches</c> or HTTP POST) and polling. Thin: the work is in
/// <see cref="BatchSubmissions"/> (one orchestration per batch id) and <see cref="BatchProcessor"/>.
/// </summary>
public sealed class PartnerBatchFunctions
{
    private readonly BatchSubmissions _submissions;
    private readonly BatchProcessor _processor;
    private readonly SubmissionAuthenticator _authenticator;
    private readonly InferenceBlobs _blobs;
    private readonly InferenceAudit _audit;
    private readonly IQueueStore _queues;
    private readonly InferenceOptions _options;
    private readonly TimeProvider _time;
    private readonly int _maxDequeueCount = QueueRetries.MaxDequeueCount(AppContext.BaseDirectory);

    public PartnerBatchFunctions(BatchSubmissions submissions, BatchProcessor processor, SubmissionAuthenticator authenticator, InferenceBlobs blobs,
        InferenceAudit audit, IQueueStore queues, IOptions<InferenceOptions> options, TimeProvider time)
    {
        _submissions = submissions;
        _processor = processor;
        _authenticator = authenticator;
        _blobs = blobs;
        _audit = audit;
        _queues = queues;
        _options = options.Value;
        _time = time;
    }

    /// <summary>
    /// A message on <c>partner-batches</c>: checked (shape, token, role, tenant), then one orchestration
    /// per batch id is started. A message that can never succeed goes to <c>partner-batches-poison</c>
    /// at once with the reason (token redacted) and is audited; a failure of storage itself throws, so
    /// the host retries the message, and on its last attempt (maxDequeueCount) the function poisons it itself,
    /// token redacted, rather than let the host poison it with the token in it.
    /// </summary>
    [Function("PartnerBatchQueue")]
    public async Task OnMessage([QueueTrigger(InferenceBlobs.BatchQueue)] string body, [DurableClient] DurableTaskClient durable, FunctionContext context,
        CancellationToken cancellationToken)
    {
        var message = ReceivedMessage.From(body, context.BindingContext.BindingData);
        PartnerBatchMessage? batch;
        try
        {
            batch = JsonSerializer.Deserialize<PartnerBatchMessage>(message.Body.Span, JsonSerializerOptions.Web);
        }
        catch (JsonException e)
        {
            await PoisonAsync(message, "anonymous", "queue/" + InferenceBlobs.BatchQueue, RefusalCodes.BadMessage, "the message is not a batch message: " + e.Message);
            return;
        }
        var problem = batch is null ? "the message is JSON null" : ShapeProblem(batch);
        if (problem is not null)
        {
            await PoisonAsync(message, "anonymous", "queue/" + InferenceBlobs.BatchQueue, RefusalCodes.BadMessage, problem);
            return;
        }

        try
        {
            await SubmitFromQueueAsync(message, batch!, durable, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException && message.DequeueCount >= _maxDequeueCount)
        {
            // The host would now move the message to partner-batches-poison as it is, bearer token and all. On the
            // last attempt the function poisons it itself, token redacted, and completes it. The reason names the
            // failure's type only: an exception's message may carry data.
            await PoisonAsync(message, "anonymous", InferenceAudit.BatchResource(batch!.Tenant, batch.BatchId), RefusalCodes.ProcessingFailed,
                $"attempt {message.DequeueCount} of {_maxDequeueCount} failed ({e.GetType().Name})");
        }
    }

    private async Task SubmitFromQueueAsync(ReceivedMessage message, PartnerBatchMessage batch, DurableTaskClient durable, CancellationToken cancellationToken)
    {
        var resource = InferenceAudit.BatchResource(batch.Tenant, batch.BatchId);
        var (principal, code, reason) = await _authenticator.AuthorizeAsync(batch.Token, batch.Tenant, cancellationToken);
        if (code is not null)
        {
            // Only an authentic caller of that very tenant may leave a refusal record the tenant's poll will see.
            if (principal?.FindFirst(SecurityClaims.Tenant)?.Value == batch.Tenant)
                await _submissions.RecordEarlyRefusalAsync(batch.Tenant, batch.BatchId, code, reason!, cancellationToken);
            await PoisonAsync(message, SubmissionAuthenticator.Subject(principal), resource, code, reason!);
            return;
        }

        var request = new BatchRequest(batch.BatchId, batch.Tenant, batch.ModelVersion, batch.Blob, batch.Sha256,
            SubmissionAuthenticator.Subject(principal), "queue", message.Id);
        var result = await _submissions.SubmitAsync(durable, request, cancellationToken);
        if (result.Kind == SubmissionKind.Conflict)
            await PoisonAsync(message, request.SubmittedBy, resource, RefusalCodes.Conflict, result.Detail!, audited: true);
    }

    /// <summary>
    /// POST the encrypted batch (application/octet-stream) for <c>?modelVersion=</c>. The batch is
    /// validated before anything starts (400 / 403 / 413 / 422 ProblemDetails, audited), then one
    /// orchestration runs it: 202 with <c>Location</c> to poll. The same batch again is answered by the first run.
    /// </summary>
    [Function("SubmitPartnerBatch")]
    [RequirePermission(Permissions.InferenceSubmit, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    [RequestBodyLimit(InferenceLimits.MaxHttpBodyBytes)]
    public async Task<IResult> Submit([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = InferenceRoutes.Templates.PartnerBatch)] HttpRequest request,
        string tenant, string batchId, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        string? modelVersion = request.Query["modelVersion"];
        var actor = SubmissionAuthenticator.Subject(request.HttpContext.User);
        var resource = InferenceAudit.BatchResource(tenant, batchId);
        if (!InferenceNames.IsValidId(tenant) || !InferenceNames.IsValidId(batchId) || !InferenceNames.IsValidId(modelVersion))
            return await RefuseAsync(actor, resource, RefusalCodes.BadMessage,
                "tenant, batch id and the query parameter modelVersion must each be 1-64 letters, digits, '.', '_' or '-'", request);

        var body = await BoundedBody.ReadAsync(request, _options.MaxBatchBytes, cancellationToken);
        if (body is null)
            return await RefuseAsync(actor, resource, RefusalCodes.BatchTooLarge, $"the batch is over the limit of {_options.MaxBatchBytes} bytes", request);

        var sha256 = InferenceBlobs.Sha256Hex(body);
        var submission = new BatchRequest(batchId, tenant, modelVersion!, InferenceBlobs.UploadedBatchBlob(tenant, batchId), sha256, actor, "http");

        // A used id is answered before anything is written: the first run's status, or a conflict.
        var instanceId = InferenceNames.InstanceId(tenant, batchId);
        if (await durable.GetInstanceAsync(instanceId, getInputsAndOutputs: true, cancellationToken) is not null
            || await _submissions.ReadEarlyRefusalAsync(tenant, batchId, cancellationToken) is not null)
            return await AnswerSubmissionAsync(durable, submission, request, cancellationToken);

        await _blobs.Batches.PutAsync(submission.Blob, new MemoryStream(body, writable: false), cancellationToken: cancellationToken);
        var validation = await _processor.ValidateAsync(submission, cancellationToken);
        if (!validation.Accepted)
            return await RefuseAsync(actor, resource, validation.ErrorCode!, validation.Reason!, request);
        return await AnswerSubmissionAsync(durable, submission, request, cancellationToken);
    }

    private async Task<IResult> AnswerSubmissionAsync(DurableTaskClient durable, BatchRequest submission, HttpRequest request, CancellationToken cancellationToken)
    {
        var result = await _submissions.SubmitAsync(durable, submission, cancellationToken);
        if (result.Kind == SubmissionKind.Conflict) return InferenceRefusedException.Problem(RefusalCodes.Conflict, result.Detail!);
        var statusUri = StatusPath(submission.Tenant, submission.BatchId);
        request.HttpContext.Response.Headers.RetryAfter = "1";
        return Results.Accepted(statusUri, new SubmissionReceipt(submission.BatchId, submission.Tenant, result.InstanceId, statusUri, result.Kind == SubmissionKind.Duplicate));
    }

    /// <summary>
    /// Poll a batch: 202 (with <c>Retry-After</c>) while it runs; 200 with the encrypted result blob
    /// (application/octet-stream, <c>X-Result-Sha256</c>) when done; 422 ProblemDetails with the reason
    /// when it was refused; 404 for an unknown batch id.
    /// </summary>
    [Function("GetPartnerBatch")]
    [RequirePermission(Permissions.InferenceRead, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    public async Task<IResult> Poll([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = InferenceRoutes.Templates.PartnerBatch)] HttpRequest request,
        string tenant, string batchId, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        var user = request.HttpContext.User;
        if (!InferenceNames.IsValidId(tenant) || !InferenceNames.IsValidId(batchId))
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "tenant and batch id must each be 1-64 letters, digits, '.', '_' or '-'");
        var instance = await durable.GetInstanceAsync(InferenceNames.InstanceId(tenant, batchId), getInputsAndOutputs: true, cancellationToken);
        if (instance is null)
        {
            if (await _submissions.ReadEarlyRefusalAsync(tenant, batchId, cancellationToken) is { } early)
                return InferenceRefusedException.Problem(early.Code, early.Reason, StatusCodes.Status422UnprocessableEntity);
            return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "No such batch.", detail: $"no batch '{batchId}' was submitted for tenant '{tenant}'");
        }
        if (instance.IsActive())
        {
            request.HttpContext.Response.Headers.RetryAfter = "1";
            return Results.Json(new { batchId, tenant, status = instance.RuntimeStatus.ToString(), progress = instance.ReadCustomStatusAs<JsonElement?>() },
                statusCode: StatusCodes.Status202Accepted);
        }
        if (instance.RuntimeStatus != OrchestrationRuntimeStatus.Completed || instance.ReadOutputAs<BatchOutcome>() is not { } outcome)
            return Results.Problem(statusCode: StatusCodes.Status500InternalServerError, title: "The batch failed.",
                detail: $"the batch's orchestration ended {instance.RuntimeStatus}: {instance.FailureDetails?.ErrorMessage ?? "no output"}");
        if (outcome.Status != BatchStatus.Completed)
            return InferenceRefusedException.Problem(outcome.ErrorCode ?? RefusalCodes.MalformedBatch, outcome.Reason ?? "refused", StatusCodes.Status422UnprocessableEntity);

        var download = await _blobs.Results.GetAsync(outcome.ResultBlob!, cancellationToken);
        if (download is null)
            return Results.Problem(statusCode: StatusCodes.Status500InternalServerError, title: "The result is missing.", detail: $"result blob '{outcome.ResultBlob}' is gone");
        await _audit.RecordAsync(SubmissionAuthenticator.Subject(user), InferenceAuditActions.ResultRead, InferenceAudit.BatchResource(tenant, batchId), AuditOutcome.Success,
            requestId: request.HttpContext.TraceIdentifier);
        request.HttpContext.Response.Headers["X-Result-Sha256"] = outcome.ResultSha256;
        request.HttpContext.Response.Headers["X-Records"] = outcome.Records.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Stream(download.Content, "application/octet-stream");
    }

    internal static string StatusPath(string tenant, string batchId) => $"/api/partners/{tenant}/batches/{batchId}";

    private static string? ShapeProblem(PartnerBatchMessage m)
    {
        if (!InferenceNames.IsValidId(m.Tenant)) return "tenant must be 1-64 letters, digits, '.', '_' or '-'";
        if (!InferenceNames.IsValidId(m.BatchId)) return "batchId must be 1-64 letters, digits, '.', '_' or '-'";
        if (!InferenceNames.IsValidId(m.ModelVersion)) return "modelVersion must be 1-64 letters, digits, '.', '_' or '-'";
        if (m.Blob is null || !InferenceBlobs.IsTenantBlob(m.Tenant, m.Blob)) return $"blob must name a blob of container '{InferenceBlobs.BatchesContainer}' under '{m.Tenant}/'";
        if (!InferenceNames.IsSha256Hex(m.Sha256)) return "sha256 must be 64 lower-case hex digits";
        return null;
    }

    private async Task<IResult> RefuseAsync(string actor, string resource, string code, string reason, HttpRequest request)
    {
        await _audit.RefusedAsync(actor, resource, code, reason, request.HttpContext.TraceIdentifier);
        return InferenceRefusedException.Problem(code, reason);
    }

    /// <summary>Moves a message that can never succeed to the poison queue with the reason; the token is redacted, the rest kept.</summary>
    private async Task PoisonAsync(ReceivedMessage message, string actor, string resource, string code, string reason, bool audited = false)
    {
        var body = message.Body.ToArray();
        // Any JSON object loses its token, also one that is not a valid batch message (a token of the wrong type).
        if (TryParseObject(body) is { } json)
        {
            foreach (var key in json.Select(p => p.Key).Where(k => k.Equals("token", StringComparison.OrdinalIgnoreCase)).ToList()) json[key] = "[redacted]";
            body = JsonSerializer.SerializeToUtf8Bytes(json);
        }
        var poison = new PoisonMessage(InferenceBlobs.BatchQueue, message.Id, message.DequeueCount, message.InsertedAt, _time.GetUtcNow(), $"{code}: {reason}", body);
        // Audited first: a crash between the two redelivers the message (audited again), never a poison with no audit entry.
        if (!audited) await _audit.RefusedAsync(actor, resource, code, reason, message.Id);
        await _queues.PutAsync(PoisonMessage.PoisonQueueName(InferenceBlobs.BatchQueue), JsonSerializer.SerializeToUtf8Bytes(poison, JsonSerializerOptions.Web));
    }

    private static JsonObject? TryParseObject(byte[] body)
    {
        try { return JsonNode.Parse(body) as JsonObject; }
        catch (JsonException) { return null; }
    }
}

/// <summary>Compile-time limits (attributes need constants); the configurable ones are in <see cref="InferenceOptions"/>.</summary>
public static class InferenceLimits
{
    /// <summary>Kestrel-level ceiling on a batch or key upload; <see cref="InferenceOptions.MaxBatchBytes"/> is checked below it.</summary>
    public const long MaxHttpBodyBytes = 512L * 1024 * 1024;
}
