using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Functions.Inference.Services;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference;

/// <summary>
/// One orchestration per batch (instance id <c>partner-batch:{tenant}:{batchId}</c>): validate, evaluate
/// every ciphertext group in its own activity (fan-out; only blob names and ETags go through history,
/// never a ciphertext), join the group results into the partner's result blob. A refusal is an outcome,
/// not a failure: it is recorded, audited and answered to the partner's poll.
/// </summary>
public sealed class PartnerBatchOrchestration(BatchProcessor processor)
{
    // Storage hiccups are retried; a refusal is returned, never thrown, so it is not retried.
    private static readonly TaskOptions Retry = TaskOptions.FromRetryPolicy(new RetryPolicy(3, TimeSpan.FromSeconds(1), backoffCoefficient: 2));

    [Function(BatchSubmissions.Orchestrator)]
    public static async Task<BatchOutcome> Run([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        var batch = context.GetInput<BatchRequest>() ?? throw new InvalidOperationException("the orchestration has no batch");
        context.SetCustomStatus(new BatchProgress("validating", 0));
        var validation = await context.CallActivityAsync<BatchValidation>("ValidatePartnerBatch", batch, Retry);
        if (validation.AlreadyDone is { } done) return done; // the result exists (the instance was purged and the batch replayed)
        if (!validation.Accepted)
            return await context.CallActivityAsync<BatchOutcome>("RefusePartnerBatch", new BatchRefusal(batch, validation.ErrorCode!, validation.Reason!), Retry);

        context.SetCustomStatus(new BatchProgress("evaluating", validation.Groups));
        string[] groupResults;
        try
        {
            var groups = new Task<string>[validation.Groups];
            for (var g = 0; g < groups.Length; g++)
                groups[g] = context.CallActivityAsync<string>("EvaluatePartnerBatchGroup", new GroupWork(batch, validation.ETag, g), Retry);
            groupResults = await Task.WhenAll(groups);
        }
        catch (TaskFailedException e)
        {
            return await context.CallActivityAsync<BatchOutcome>("RefusePartnerBatch",
                new BatchRefusal(batch, RefusalCodes.EvaluationFailed, $"evaluating the batch failed after retries: {e.FailureDetails.ErrorMessage}"), Retry);
        }

        context.SetCustomStatus(new BatchProgress("storing", validation.Groups));
        return await context.CallActivityAsync<BatchOutcome>("StorePartnerResult", new ResultAssembly(batch, validation.Records, groupResults), Retry);
    }

    [Function("ValidatePartnerBatch")]
    public Task<BatchValidation> Validate([ActivityTrigger] BatchRequest batch, CancellationToken cancellationToken) =>
        processor.ValidateAsync(batch, cancellationToken, split: true);

    [Function("EvaluatePartnerBatchGroup")]
    public Task<string> Evaluate([ActivityTrigger] GroupWork work, CancellationToken cancellationToken) =>
        processor.EvaluateGroupAsync(work, cancellationToken);

    [Function("StorePartnerResult")]
    public Task<BatchOutcome> Store([ActivityTrigger] ResultAssembly assembly, CancellationToken cancellationToken) =>
        processor.StoreResultAsync(assembly, cancellationToken);

    [Function("RefusePartnerBatch")]
    public Task<BatchOutcome> Refuse([ActivityTrigger] BatchRefusal refusal, CancellationToken cancellationToken) =>
        processor.RefuseAsync(refusal, cancellationToken);
}

/// <summary>Custom status of a running batch: the phase and how many ciphertext groups it has.</summary>
public sealed record BatchProgress(string Phase, int Groups);

/// <summary>Input of the refuse activity.</summary>
public sealed record BatchRefusal(BatchRequest Batch, string Code, string Reason);
