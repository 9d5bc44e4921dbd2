using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Serverless.Fraud.Features;
using Serverless.Fraud.Training;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;

namespace Serverless.Functions.Fraud.Services;

/// <summary>
/// Fraud model versions and which of them serve. A version is an ONNX file our importer accepts, reading
/// [k, 21] windows (immutable once published). Promotion and rollback pass the metric gate on the
/// labelled evaluation set and are audited whatever the verdict; the deployment record changes only
/// with If-Match, so two operators cannot interleave.
/// </summary>
public sealed class FraudModelRegistry(FraudStore store, IAuditLog audit, IOptions<FraudOptions> options, TimeProvider time)
{
    private const int MaxFormerChampions = 20;
    private readonly ConcurrentDictionary<string, FraudModel> _models = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _auroc = new(StringComparer.Ordinal);
    private sealed record Cached(FraudDeployment Deployment, long ReadAt);
    private volatile Cached? _current;

    /// <summary>Validates and stores an ONNX model; (info, created).</summary>
    public async Task<(FraudModelInfo Info, bool Created)> PublishAsync(string version, byte[] onnx, string actor, CancellationToken cancellationToken)
    {
        var resource = Resource(version);
        OnnxModel model;
        try
        {
            model = OnnxImporter.Load(onnx);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or NotSupportedException or ArgumentException or OverflowException)
        {
            throw await RefuseAsync(actor, FraudAuditActions.ModelPublish, resource, FraudRefusalCodes.BadRequest, $"the body is not an ONNX model this platform reads: {e.Message}");
        }
        var k = options.Value.Steps;
        if (model.Config.Features != EventFeatures.Count || model.Config.Steps != k)
            throw await RefuseAsync(actor, FraudAuditActions.ModelPublish, resource, FraudRefusalCodes.BadRequest,
                $"the model reads [{model.Config.Steps}, {model.Config.Features}] windows; fraud scoring serves [{k}, {EventFeatures.Count}] (Fraud__Steps, the {EventFeatures.Count} event features)");
        var info = new FraudModelInfo(version, k, model.Config.Architecture.ToString(), model.Parameters.Length, Serverless.Functions.Inference.Services.InferenceBlobs.Sha256Hex(onnx), actor, time.GetUtcNow());
        try
        {
            var created = await store.PutModelAsync(info, onnx, cancellationToken);
            if (!created) return (await store.GetInfoAsync(version, cancellationToken) ?? info, false);
        }
        catch (FraudRefusedException e)
        {
            await audit.AppendAsync(new AuditEvent(actor, FraudAuditActions.ModelPublish, resource, AuditOutcome.Denied, null, $"{e.Code}: {e.Message}"));
            throw;
        }
        await audit.AppendAsync(new AuditEvent(actor, FraudAuditActions.ModelPublish, resource, AuditOutcome.Success, null,
            $"{info.Architecture}, {info.Parameters} parameters, sha256 {info.Sha256}"));
        return (info, true);
    }

    public Task<FraudModelInfo?> LoadInfoAsync(string version, CancellationToken cancellationToken) => store.GetInfoAsync(version, cancellationToken);

    /// <summary>A published version as the scorer runs it; null when unknown.</summary>
    public async Task<FraudModel?> LoadAsync(string version, CancellationToken cancellationToken)
    {
        if (_models.TryGetValue(version, out var cached)) return cached;
        if (await store.GetModelAsync(version, cancellationToken) is not { } stored) return null;
        var onnx = OnnxImporter.Load(stored.Onnx);
        return _models[version] = new FraudModel(version, onnx.Config, onnx.Parameters);
    }

    /// <summary>The deployment record, read at most once a second by other processes' changes; this process's own changes are seen at once.</summary>
    public async Task<FraudDeployment> CurrentAsync(CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        if (_current is { } c && time.GetElapsedTime(c.ReadAt, now) < TimeSpan.FromSeconds(1)) return c.Deployment;
        var (deployment, _) = await store.GetDeploymentAsync(cancellationToken);
        _current = new Cached(deployment, now);
        return deployment;
    }

    /// <summary>The stored evaluation set, replaced; the gate's cached figures are dropped.</summary>
    public async Task PutEvaluationAsync(FraudEvaluationSet set, CancellationToken cancellationToken)
    {
        await store.PutEvaluationAsync(set, cancellationToken);
        _auroc.Clear();
        await audit.AppendAsync(new AuditEvent(set.PutBy, FraudAuditActions.EvaluationPut, "fraud/evaluation", AuditOutcome.Success, null,
            $"{set.Events.Count} events, {set.Labels.Count(l => l == 1)} fraud"));
    }

    /// <summary>
    /// The gate: the candidate's AUROC on the evaluation set must reach <see cref="FraudOptions.MinimumAuroc"/> and, when
    /// <paramref name="current"/> is given, be at most <see cref="FraudOptions.MaxAurocDrop"/> below the current version's.
    /// </summary>
    public async Task<GateResult> GateAsync(string candidate, string? current, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var set = await store.GetEvaluationAsync(cancellationToken)
            ?? throw new FraudRefusedException(FraudRefusalCodes.NoEvaluationSet, "no evaluation set has been put (PUT /api/fraud/evaluation): the gate has nothing to measure", 409);
        var candidateAuroc = await AurocAsync(candidate, set, cancellationToken);
        double? currentAuroc = current is null ? null : await AurocAsync(current, set, cancellationToken);
        var passed = candidateAuroc >= o.MinimumAuroc && (currentAuroc is not { } cur || candidateAuroc >= cur - o.MaxAurocDrop);
        var reason = candidateAuroc < o.MinimumAuroc
            ? $"AUROC {candidateAuroc:F4} is below the floor {o.MinimumAuroc:F4}"
            : currentAuroc is { } c && candidateAuroc < c - o.MaxAurocDrop
                ? $"AUROC {candidateAuroc:F4} is more than {o.MaxAurocDrop:F4} below {current}'s {c:F4}"
                : $"AUROC {candidateAuroc:F4}" + (currentAuroc is { } d ? $" against {current}'s {d:F4}" : "") + $" (floor {o.MinimumAuroc:F4})";
        return new GateResult(candidate, candidateAuroc, current, currentAuroc, o.MinimumAuroc, o.MaxAurocDrop, set.Events.Count, passed, reason);
    }

    /// <summary>Makes <paramref name="version"/> the champion if it passes the gate against the current one.</summary>
    public async Task<(FraudDeployment Deployment, GateResult Gate)> PromoteAsync(string version, double? threshold, string actor, CancellationToken cancellationToken)
    {
        var resource = Resource(version);
        if (threshold is { } t && !(t > 0 && t < 1))
            throw await RefuseAsync(actor, FraudAuditActions.Promote, resource, FraudRefusalCodes.BadRequest, "threshold must be within (0, 1)");
        await RequireKnownAsync(version, actor, FraudAuditActions.Promote, cancellationToken);
        var (before, _) = await store.GetDeploymentAsync(cancellationToken);
        var gate = await GatedAsync(version, before.Champion == version ? null : before.Champion, actor, FraudAuditActions.Promote, resource, cancellationToken);
        var after = await UpdateAsync(d => d with
        {
            Champion = version,
            Threshold = threshold ?? d.Threshold,
            Challenger = d.Challenger == version ? null : d.Challenger,
            ChallengerFraction = d.Challenger == version ? 0 : d.ChallengerFraction,
            FormerChampions = d.Champion is null || d.Champion == version ? d.FormerChampions : [.. d.FormerChampions.TakeLast(MaxFormerChampions - 1), d.Champion],
        }, cancellationToken);
        await audit.AppendAsync(new AuditEvent(actor, FraudAuditActions.Promote, resource, AuditOutcome.Success, null,
            $"champion {before.Champion ?? "none"} -> {version}, threshold {after.Threshold:G4}; gate: {gate.Reason}"));
        return (after, gate);
    }

    /// <summary>Serves the previous champion again, if it still passes the gate's floor.</summary>
    public async Task<(FraudDeployment Deployment, GateResult Gate)> RollbackAsync(string actor, CancellationToken cancellationToken)
    {
        var (before, _) = await store.GetDeploymentAsync(cancellationToken);
        if (before.FormerChampions.Count == 0 || before.Champion is null)
            throw await RefuseAsync(actor, FraudAuditActions.Rollback, "fraud/deployment", FraudRefusalCodes.Conflict, "there is no former champion to roll back to", 409);
        var target = before.FormerChampions[^1];
        var gate = await GatedAsync(target, null, actor, FraudAuditActions.Rollback, Resource(target), cancellationToken);
        var after = await UpdateAsync(d => d.Champion == before.Champion && d.FormerChampions.Count > 0 && d.FormerChampions[^1] == target
            ? d with { Champion = target, FormerChampions = [.. d.FormerChampions.SkipLast(1)] }
            : throw new FraudRefusedException(FraudRefusalCodes.Conflict, "the deployment changed during the rollback; read it and try again", 409), cancellationToken);
        await audit.AppendAsync(new AuditEvent(actor, FraudAuditActions.Rollback, Resource(target), AuditOutcome.Success, null,
            $"champion {before.Champion} -> {target}; gate: {gate.Reason}"));
        return (after, gate);
    }

    /// <summary>Sets (or with a null version removes) the challenger and its share of cards.</summary>
    public async Task<FraudDeployment> SetChallengerAsync(ChallengerRequest request, string actor, CancellationToken cancellationToken)
    {
        var resource = request.Version is null ? "fraud/deployment" : Resource(request.Version);
        if (!(request.Fraction is >= 0 and <= 0.5))
            throw await RefuseAsync(actor, FraudAuditActions.ChallengerSet, resource, FraudRefusalCodes.BadRequest, "fraction must be within 0..0.5: the champion serves most cards");
        var experiment = request.Experiment ?? "canary";
        if (!Serverless.Contracts.Inference.InferenceNames.IsValidId(experiment))
            throw await RefuseAsync(actor, FraudAuditActions.ChallengerSet, resource, FraudRefusalCodes.BadRequest, "experiment must be 1-64 letters, digits, '.', '_' or '-'");
        if (request.Version is { } v) await RequireKnownAsync(v, actor, FraudAuditActions.ChallengerSet, cancellationToken);
        var after = await UpdateAsync(d => d.Champion is null
            ? throw new FraudRefusedException(FraudRefusalCodes.NoChampion, "promote a champion before adding a challenger", 409)
            : request.Version == d.Champion
                ? throw new FraudRefusedException(FraudRefusalCodes.Conflict, $"'{request.Version}' is the champion already", 409)
                : d with { Challenger = request.Version, ChallengerFraction = request.Version is null ? 0 : request.Fraction, Experiment = experiment }, cancellationToken);
        await audit.AppendAsync(new AuditEvent(actor, FraudAuditActions.ChallengerSet, resource, AuditOutcome.Success, null,
            request.Version is null ? "challenger removed" : $"challenger {request.Version} on {request.Fraction:P1} of cards, experiment {experiment}"));
        return after;
    }

    private async Task<GateResult> GatedAsync(string candidate, string? current, string actor, string action, string resource, CancellationToken cancellationToken)
    {
        GateResult gate;
        try
        {
            gate = await GateAsync(candidate, current, cancellationToken);
        }
        catch (FraudRefusedException e)
        {
            await audit.AppendAsync(new AuditEvent(actor, action, resource, AuditOutcome.Denied, null, $"{e.Code}: {e.Message}"));
            throw;
        }
        if (!gate.Passed)
            throw await RefuseAsync(actor, action, resource, FraudRefusalCodes.GateFailed, $"the metric gate refused '{candidate}': {gate.Reason}", 409, gate);
        return gate;
    }

    private async Task<double> AurocAsync(string version, FraudEvaluationSet set, CancellationToken cancellationToken)
    {
        if (_auroc.TryGetValue(version, out var cached)) return cached;
        var model = await LoadAsync(version, cancellationToken) ?? throw new FraudRefusedException(FraudRefusalCodes.UnknownModel, $"fraud model version '{version}' is not published", 404);
        var data = FraudDatasets.BuildLabelled(set.Events, set.Labels, model.Steps);
        var scores = new CnnLstm(model.Config).Predict(model.Parameters, data);
        return _auroc[version] = Metrics.Auroc(scores, data.Labels);
    }

    private async Task RequireKnownAsync(string version, string actor, string action, CancellationToken cancellationToken)
    {
        if (await store.GetInfoAsync(version, cancellationToken) is null)
            throw await RefuseAsync(actor, action, Resource(version), FraudRefusalCodes.UnknownModel, $"fraud model version '{version}' is not published", 404);
    }

    private async Task<FraudDeployment> UpdateAsync(Func<FraudDeployment, FraudDeployment> change, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var (current, etag) = await store.GetDeploymentAsync(cancellationToken);
            var next = change(current) with { Revision = current.Revision + 1 };
            if (await store.TryPutDeploymentAsync(next, etag, cancellationToken))
            {
                _current = new Cached(next, time.GetTimestamp());
                return next;
            }
        }
        throw new FraudRefusedException(FraudRefusalCodes.Conflict, "the deployment record kept changing; try again", 409);
    }

    private async Task<FraudRefusedException> RefuseAsync(string actor, string action, string resource, string code, string reason, int status = 400, object? details = null)
    {
        await audit.AppendAsync(new AuditEvent(actor, action, resource, AuditOutcome.Denied, null, $"{code}: {reason}"));
        return new FraudRefusedException(code, reason, status, details);
    }

    private static string Resource(string version) => $"fraud-model/{version}";
}
