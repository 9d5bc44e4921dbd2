using Microsoft.Extensions.Options;
using Serverless.Fraud.Data;
using Serverless.Fraud.Tokenization;
using Serverless.Functions.Fraud.Services;
using Serverless.Functions.Inference;
using Serverless.Functions.Inference.Services;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Fraud;

/// <summary>
/// Fraud model versions for operators: publish an ONNX model, put the labelled evaluation set the gate
/// measures on, add a challenger, promote and roll back (gated and audited), and read the drift monitor.
/// </summary>
public sealed class FraudModelFunctions(FraudModelRegistry registry, FraudScoring scoring, CardTokenizer tokenizer, IOptions<FraudOptions> options, TimeProvider time)
{
    private const string VersionRule = "the model version must be 1-64 letters, digits, '.', '_' or '-'";

    /// <summary>PUT the ONNX file: 201 with its info; 200 for the same bytes again; 400 when it is not a [k, 21] model; 409 for other bytes under the version.</summary>
    [Function("PublishFraudModel")]
    [RequirePermission(Permissions.ModelPromote)]
    public async Task<IResult> Publish([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "fraud/models/{version}")] HttpRequest request, string version,
        CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(version)) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, VersionRule);
        var body = await BoundedBody.ReadAsync(request, options.Value.MaxModelBytes, cancellationToken);
        if (body is null) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, $"the model is over {options.Value.MaxModelBytes} bytes", StatusCodes.Status413PayloadTooLarge);
        return await Answer(async () =>
        {
            var (info, created) = await registry.PublishAsync(version, body, FraudFunctions.Subject(request.HttpContext.User), cancellationToken);
            return created ? Results.Created($"/api/fraud/models/{version}", info) : Results.Ok(info);
        });
    }

    /// <summary>PUT <c>{"transactions":[...]}</c> with a <c>fraud</c> label (0/1) on each, in time order: tokenized and stored encrypted; the gate and the drift reference read it.</summary>
    [Function("PutFraudEvaluationSet")]
    [RequirePermission(Permissions.ModelPromote)]
    public async Task<IResult> PutEvaluation([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "fraud/evaluation")] HttpRequest request, CancellationToken cancellationToken)
    {
        var max = options.Value.MaxEvaluationEvents;
        var body = await BoundedBody.ReadAsync(request, max * 1024L, cancellationToken);
        if (body is null) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, $"the body is over {max * 1024L} bytes", StatusCodes.Status413PayloadTooLarge);
        var (batch, problem) = FraudFunctions.ReadBatch(body, max);
        if (batch is null) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, problem!);
        var events = new List<CardEvent>(batch.Count);
        var labels = new List<int>(batch.Count);
        for (var i = 0; i < batch.Count; i++)
        {
            var (e, reason) = FraudFunctions.Tokenize(tokenizer, batch[i]);
            if (e is null) return FraudRefusedException.Problem(FraudRefusalCodes.MalformedTransaction, $"transaction {i}: {reason}");
            if (batch[i]!.Fraud is not (0 or 1)) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, $"transaction {i}: fraud must be 0 or 1 in an evaluation set");
            events.Add(e);
            labels.Add(batch[i]!.Fraud!.Value);
        }
        var frauds = labels.Count(l => l == 1);
        if (frauds == 0 || frauds == labels.Count)
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, "an evaluation set needs both fraud and legitimate transactions (AUROC is undefined otherwise)");
        await registry.PutEvaluationAsync(new FraudEvaluationSet(events, labels, FraudFunctions.Subject(request.HttpContext.User), time.GetUtcNow()), cancellationToken);
        return Results.Ok(new { events = events.Count, fraud = frauds });
    }

    /// <summary>GET a version's info; 404 when unknown.</summary>
    [Function("GetFraudModel")]
    [RequirePermission(Permissions.ModelRead)]
    public async Task<IResult> Get([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "fraud/models/{version}")] HttpRequest request, string version,
        CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(version)) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, VersionRule);
        return await registry.LoadInfoAsync(version, cancellationToken) is { } info
            ? Results.Ok(info)
            : FraudRefusedException.Problem(FraudRefusalCodes.UnknownModel, $"fraud model version '{version}' is not published", StatusCodes.Status404NotFound);
    }

    /// <summary>POST <c>{"threshold": t}</c> (optional): the version becomes the champion if the gate passes (200 with the gate's figures), else 409 with them.</summary>
    [Function("PromoteFraudModel")]
    [RequirePermission(Permissions.ModelPromote)]
    public async Task<IResult> Promote([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "fraud/models/{version}/promote")] HttpRequest request, string version,
        CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(version)) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, VersionRule);
        // An empty body keeps the threshold; one over the limit or not {"threshold": t} is refused rather than ignored.
        var body = await BoundedBody.ReadAsync(request, 4096, cancellationToken);
        var promotion = FraudFunctions.ParseJson<PromotionRequest>(body);
        if (body is not { Length: 0 } && promotion is null)
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, "the body must be {\"threshold\": t} or empty");
        return await Answer(async () =>
        {
            var (deployment, gate) = await registry.PromoteAsync(version, promotion?.Threshold, FraudFunctions.Subject(request.HttpContext.User), cancellationToken);
            return Results.Ok(new { deployment, gate });
        });
    }

    /// <summary>POST: the former champion serves again if it still passes the gate's floor (200), else 409.</summary>
    [Function("RollbackFraudModel")]
    [RequirePermission(Permissions.ModelPromote)]
    public Task<IResult> Rollback([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "fraud/deployment/rollback")] HttpRequest request, CancellationToken cancellationToken) =>
        Answer(async () =>
        {
            var (deployment, gate) = await registry.RollbackAsync(FraudFunctions.Subject(request.HttpContext.User), cancellationToken);
            return Results.Ok(new { deployment, gate });
        });

    /// <summary>PUT <c>{"version": v, "fraction": 0.1, "experiment": "e"}</c>: the challenger and its share of cards (by a hash of the card token); a null version removes it.</summary>
    [Function("SetFraudChallenger")]
    [RequirePermission(Permissions.ModelPromote)]
    public async Task<IResult> SetChallenger([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "fraud/deployment/challenger")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        var challenger = FraudFunctions.ParseJson<ChallengerRequest>(await BoundedBody.ReadAsync(request, 4096, cancellationToken));
        if (challenger is null || (challenger.Version is not null && !InferenceNames.IsValidId(challenger.Version)))
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, "the body must be {\"version\": v or null, \"fraction\": f, \"experiment\": name}");
        return await Answer(async () => Results.Ok(await registry.SetChallengerAsync(challenger, FraudFunctions.Subject(request.HttpContext.User), cancellationToken)));
    }

    /// <summary>GET the deployment record: champion, threshold, challenger, former champions.</summary>
    [Function("GetFraudDeployment")]
    [RequirePermission(Permissions.ModelRead)]
    public async Task<IResult> GetDeployment([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "fraud/deployment")] HttpRequest request, CancellationToken cancellationToken) =>
        Results.Ok(await registry.CurrentAsync(cancellationToken));

    /// <summary>GET the drift monitor: PSI per input feature over every scorer instance's window under the current deployment; 404 without a champion or a reference.</summary>
    [Function("GetFraudDrift")]
    [RequirePermission(Permissions.MetricsRead)]
    public async Task<IResult> GetDrift([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "fraud/drift")] HttpRequest request, CancellationToken cancellationToken) =>
        await scoring.DriftAsync(cancellationToken) is { } report
            ? Results.Ok(report)
            : FraudRefusedException.Problem(FraudRefusalCodes.NoEvaluationSet, "the drift monitor has no reference yet: put an evaluation set and score events", StatusCodes.Status404NotFound);

    private static async Task<IResult> Answer(Func<Task<IResult>> action)
    {
        try { return await action(); }
        catch (FraudRefusedException e) { return e.ToProblem(); }
    }
}
