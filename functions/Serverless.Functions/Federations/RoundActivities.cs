using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Model.Data;
using Serverless.Model.Import;
using Serverless.Model.Onnx;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Functions.Federations;

/// <summary>Summary of the training aggregation, stored before the checkpoint so a retried commit reuses it.</summary>
internal sealed record AggregateSummary(Dictionary<string, double> Metrics, RoundExcludedClient[] Excluded, string? NormViolation);

/// <summary>
/// The round's activities. Each reads what it needs from the blob store and writes its results there
/// before returning, and each is safe to run again (at-least-once): plans, checkpoints and phase
/// outputs are written once or recomputed identically, and state changes are keyed by round or version.
/// </summary>
public sealed class RoundActivities(FederationStore store, IAuditLog audit, TimeProvider time, ILogger<RoundActivities> logger)
{
    public const string Prepare = "RoundPrepare";
    public const string ClosePhase = "RoundClosePhase";
    public const string FinishStatistics = "RoundFinishStatistics";
    public const string Commit = "RoundCommit";
    public const string Audit = "RoundAudit";

    private const string Platform = "platform";

    [Function(Prepare)]
    public async Task<RoundPrepared> PrepareRound([ActivityTrigger] RoundInput input, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(input.Federation, ct);
        if (state is null) return Refused($"federation '{input.Federation}' no longer exists");
        var plan = await store.GetPlanAsync(input.Federation, input.Round, ct);
        if (plan is null)
        {
            try
            {
                plan = RoundCoordinator.Plan(state, input.Round, time.GetUtcNow(), input.Actor, new CryptoRandom());
            }
            catch (RoundRefusedException e)
            {
                return Refused(e.Message);
            }
            plan = await store.WritePlanOnceAsync(plan, ct);
            await audit.AppendAsync(new AuditEvent(Platform, "round.plan", Resource(input), AuditOutcome.Success, Instance(input),
                $"selected {string.Join(",", plan.Selected.Select(c => c.ClientId))} of {plan.Population}; stages {string.Join(",", plan.Stages.Select(s => s.Stage + (s.Secure ? "(secure)" : "(plain)")))}; " +
                $"q={plan.SamplingRate:G4} clip={plan.Fit.ClipNorm:G4} clientNoise={plan.Fit.NoiseStd:G4} centralNoise={plan.CentralNoiseStd:G4} base={plan.BaseVersion}"), ct);
        }
        var stages = plan.Stages.Select(s => new RoundPreparedStage(s.Stage, s.Secure, plan.Selected.Select(c => c.SecAggId).ToArray(),
            s.Secure ? [.. RoundCoordinator.PhasesOf(s.Parameters)] : null)).ToArray();
        return new RoundPrepared(null, plan.Selected, stages, plan.BaseVersion, state.EpsilonSpent, plan.Config.Deadlines, plan.MinSurvivors);

        static RoundPrepared Refused(string reason) => new(reason, [], [], "", 0, new FederationDeadlines(), 0);
    }

    [Function(ClosePhase)]
    public async Task<RoundClosed> CloseSecAggPhase([ActivityTrigger] RoundCloseInput input, CancellationToken ct)
    {
        var plan = await store.GetPlanAsync(input.Federation, input.Round, ct) ?? throw new InvalidOperationException($"Round {input.Round} of '{input.Federation}' has no plan.");
        var parameters = plan.StageOf(input.Stage)?.Parameters ?? throw new InvalidOperationException($"Stage '{input.Stage}' is not a secure stage of round {input.Round}.");
        input = input with { Arrivals = input.Arrivals.With(input.Phase, await ArrivalsAtCloseAsync(input, parameters, ct)) };
        var messages = await LoadAsync(input, ct);
        var result = parameters.RequireSignatures
            ? RoundCoordinator.ClosePhase(parameters, input.Phase, input.Arrivals, messages, plan.VerificationKeys(), SecAggSigningContext.Of(input.Federation, input.Round, input.Stage))
            : RoundCoordinator.ClosePhase(parameters, input.Phase, input.Arrivals, messages);
        if (result.AbortReason is null)
        {
            switch (input.Phase)
            {
                case RoundPhase.AdvertiseKeys:
                    foreach (var (id, keys) in result.Keys!) await store.PutOutputAsync(input.Federation, input.Round, input.Stage, $"keys-{id}", keys, ct);
                    break;
                case RoundPhase.ShareKeys:
                    foreach (var (id, shares) in result.Shares!) await store.PutOutputAsync(input.Federation, input.Round, input.Stage, $"shares-{id}", shares, ct);
                    break;
                case RoundPhase.MaskedInput:
                    await store.PutOutputAsync(input.Federation, input.Round, input.Stage, "unmask", result.Unmask!, ct);
                    break;
                case RoundPhase.ConsistencyCheck:
                    await store.PutOutputAsync(input.Federation, input.Round, input.Stage, "unmask-signed", result.Unmask!, ct);
                    break;
                case RoundPhase.Unmasking:
                    // Each sum is a released quantity: its privacy is charged before it is stored for anyone to read.
                    if (input.Stage == RoundStages.Training) await ChargeAsync(plan, ct);
                    else if (input.Stage == RoundStages.Statistics) await ChargeStatisticsAsync(plan, ct);
                    await store.PutOutputAsync(input.Federation, input.Round, input.Stage, "sum", result.Result!, ct);
                    break;
            }
        }
        await audit.AppendAsync(new AuditEvent(Platform, "round.phase", $"federation/{input.Federation}/round/{input.Round}",
            result.AbortReason is null ? AuditOutcome.Success : AuditOutcome.Failure, RoundRoutes.InstanceId(input.Federation, input.Round),
            $"{input.Stage}/{input.Phase} closed: {input.Arrivals.Of(input.Phase).Length} messages, {result.Next.Length} continue, dropped [{string.Join(",", result.Dropped)}], " +
            $"excluded [{string.Join("; ", result.Exclusions.Select(e => $"{e.ClientId}: {e.Reason}"))}]" + (result.AbortReason is null ? "" : "; aborted: " + result.AbortReason)), ct);
        logger.LogInformation("Round {Round} of {Federation}: {Stage}/{Phase} closed with {Arrived} messages, {Next} continue, {Dropped} dropped{Abort}",
            input.Round, input.Federation, input.Stage, input.Phase, input.Arrivals.Of(input.Phase).Length, result.Next.Length, result.Dropped.Length,
            result.AbortReason is null ? "" : "; aborted: " + result.AbortReason);
        return new RoundClosed(result.Next, result.Dropped, result.Exclusions.Select(e => new RoundSecAggExclusion(e.ClientId, $"{e.Phase}: {e.Reason}")).ToArray(), result.AbortReason,
            input.Arrivals.Of(input.Phase));
    }

    /// <summary>
    /// Who made the phase: the arrival events the orchestration recorded plus every expected client whose message was
    /// stored before this close (an event the engine delivered after the deadline timer, or one lost after its store).
    /// The first attempt records the set; a retried close reads it back, so every attempt closes the same phase.
    /// </summary>
    private async Task<int[]> ArrivalsAtCloseAsync(RoundCloseInput input, SecAggRoundParameters parameters, CancellationToken ct)
    {
        var kind = $"arrivals-{input.Phase}";
        if (await store.GetOutputAsync<int[]>(input.Federation, input.Round, input.Stage, kind, ct) is { } recorded) return recorded;
        var expected = ExpectedIn(input, parameters);
        var stored = new HashSet<int>();
        foreach (var id in expected)
            if (await store.HasMessageAsync(input.Federation, input.Round, input.Stage, input.Phase, id, ct)) stored.Add(id);
        var arrived = RoundCoordinator.ArrivalsAtClose(expected, input.Arrivals.Of(input.Phase), stored.Contains);
        await store.PutOutputAsync(input.Federation, input.Round, input.Stage, kind, arrived, ct);
        return arrived;
    }

    /// <summary>The ids that could answer the phase: every client for AdvertiseKeys, else those that made the previous phase.</summary>
    private static int[] ExpectedIn(RoundCloseInput input, SecAggRoundParameters parameters)
    {
        var phases = RoundCoordinator.PhasesOf(parameters);
        var index = phases.ToList().IndexOf(input.Phase);
        return index <= 0 ? parameters.ClientIds : input.Arrivals.Of(phases[index - 1]);
    }

    /// <summary>
    /// Charges the round to the accountant (once: <see cref="RoundCoordinator.Charge"/> skips a round
    /// already accounted) and audits the first charge. Runs before the training sum can be released, so
    /// a round that fails after the release (or is retried) has still paid for it.
    /// </summary>
    private Task ChargeAsync(RoundPlan plan, CancellationToken ct) => plan.Config.Privacy.Enabled
        ? ChargeOnceAsync(plan, RoundCoordinator.Charge, spent => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"round {plan.Round}: q={plan.SamplingRate:G4} z={plan.Config.Privacy.NoiseMultiplier:G4}; {spent}"), ct)
        : Task.CompletedTask;

    /// <summary>
    /// Charges the statistics release (one Gaussian step at privacy.statisticsNoiseMultiplier; decision 0023) once, before the
    /// statistics sum is stored, and audits the first charge.
    /// </summary>
    private Task ChargeStatisticsAsync(RoundPlan plan, CancellationToken ct) => plan.StatisticsPrivacy is { } mechanism
        ? ChargeOnceAsync(plan, RoundCoordinator.ChargeStatistics, spent => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"round {plan.Round} statistics: q=1 z={mechanism.NoiseMultiplier:G4} (noise std {mechanism.TargetStd:G4} per share); {spent}"), ct)
        : Task.CompletedTask;

    /// <summary>
    /// Applies <paramref name="charge"/> to the federation's account (a replayed activity finds it charged and changes nothing)
    /// and audits the first application, with the epsilon now spent.
    /// </summary>
    private async Task ChargeOnceAsync(RoundPlan plan, Func<FederationState, RoundPlan, FederationState> charge, Func<string, string> detail, CancellationToken ct)
    {
        var charged = false;
        var updated = await store.UpdateAsync(plan.Federation, s =>
        {
            var next = charge(s, plan);
            charged = !ReferenceEquals(next, s);
            return next;
        }, ct) ?? throw new InvalidOperationException($"Federation '{plan.Federation}' no longer exists.");
        if (charged)
            await audit.AppendAsync(new AuditEvent(Platform, "privacy.charge", $"federation/{plan.Federation}/round/{plan.Round}", AuditOutcome.Success,
                RoundRoutes.InstanceId(plan.Federation, plan.Round),
                detail(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"epsilon now {updated.EpsilonSpent:F4} at delta {updated.Config.Privacy.Delta:G3}, before the sum is released"))), ct);
    }

    private async Task<MessageSource> LoadAsync(RoundCloseInput input, CancellationToken ct)
    {
        var source = new MessageSource();
        var plan = await store.GetPlanAsync(input.Federation, input.Round, ct);
        foreach (var phase in RoundCoordinator.PhasesOf(plan?.StageOf(input.Stage)?.Parameters))
        {
            foreach (var id in input.Arrivals.Of(phase))
            {
                switch (phase)
                {
                    case RoundPhase.AdvertiseKeys:
                        if (await Get<AdvertiseKeysMessage>() is { } a) source.Advertise[id] = a;
                        break;
                    case RoundPhase.ShareKeys:
                        if (await Get<ShareKeysMessage>() is { } s) source.Share[id] = s;
                        break;
                    case RoundPhase.MaskedInput:
                        if (await Get<MaskedInputMessage>() is { } m) source.Masked[id] = m;
                        break;
                    case RoundPhase.ConsistencyCheck:
                        if (await Get<ConsistencySignature>() is { } c) source.Consistency[id] = c;
                        break;
                    default:
                        if (await Get<UnmaskResponse>() is { } u) source.Unmask[id] = u;
                        break;
                }

                Task<T?> Get<T>() where T : class => store.GetMessageAsync<T>(input.Federation, input.Round, input.Stage, phase, id, ct);
            }
            if (phase == input.Phase) break;
        }
        return source;
    }

    private sealed class MessageSource : IRoundMessageSource
    {
        public Dictionary<int, AdvertiseKeysMessage> Advertise { get; } = [];
        public Dictionary<int, ShareKeysMessage> Share { get; } = [];
        public Dictionary<int, MaskedInputMessage> Masked { get; } = [];
        public Dictionary<int, UnmaskResponse> Unmask { get; } = [];
        public Dictionary<int, ConsistencySignature> Consistency { get; } = [];
        public ConsistencySignature? ConsistencyCheck(int secAggId) => Consistency.GetValueOrDefault(secAggId);
        public AdvertiseKeysMessage? AdvertiseKeys(int secAggId) => Advertise.GetValueOrDefault(secAggId);
        public ShareKeysMessage? ShareKeys(int secAggId) => Share.GetValueOrDefault(secAggId);
        public MaskedInputMessage? MaskedInput(int secAggId) => Masked.GetValueOrDefault(secAggId);
        public UnmaskResponse? Unmasking(int secAggId) => Unmask.GetValueOrDefault(secAggId);
    }

    [Function(FinishStatistics)]
    public async Task<string> FinishStatisticsStage([ActivityTrigger] RoundStageInput input, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(input.Federation, ct) ?? throw new InvalidOperationException($"Federation '{input.Federation}' no longer exists.");
        if (state.PreprocessorJson is not null) return state.CurrentVersion ?? RoundCoordinator.VersionName(0);
        var plan = await store.GetPlanAsync(input.Federation, input.Round, ct) ?? throw new InvalidOperationException("no plan");
        var sum = await store.GetOutputAsync<SecAggResult>(input.Federation, input.Round, RoundStages.Statistics, "sum", ct)
            ?? throw new InvalidOperationException("The statistics stage has no sum.");
        var preprocessor = RoundCoordinator.PreprocessorFromSum(plan, sum.Sum);
        var version = RoundCoordinator.VersionName(0);
        var json = await store.WriteCheckpointOnceAsync(input.Federation, version, RoundCoordinator.InitialCheckpoint(plan.Config, preprocessor).ToJson(), ct);
        var checkpoint = ModelCheckpoint.FromJson(json);
        var onnx = OnnxExporter.Export(checkpoint.Config, checkpoint.Parameters, Metadata(input.Federation, version));
        await store.PutOnnxAsync(input.Federation, version, onnx, ct);
        var metrics = await EvaluateAsync(plan.Config, checkpoint.Preprocessor, onnx, ct) ?? [];
        metrics["statisticsClients"] = sum.Included.Length;
        await store.UpdateAsync(input.Federation, s => s.PreprocessorJson is not null ? s : s with
        {
            PreprocessorJson = checkpoint.Preprocessor.ToJson(),
            Versions = [.. s.Versions, new ModelVersionInfo(version, input.Round, time.GetUtcNow(), ModelVersionState.Promoted, null, metrics, s.EpsilonSpent,
                checkpoint.Parameters.Length, $"initial parameters; standardization statistics from {sum.Included.Length} clients by secure aggregation")],
            CurrentVersion = version,
        }, ct);
        await audit.AppendAsync(new AuditEvent(Platform, AuditActions.ModelPromote, $"federation/{input.Federation}/model/{version}", AuditOutcome.Success, null,
            $"round {input.Round}: statistics from {sum.Included.Length} clients (secure aggregation); initial model {version}"), ct);
        return version;
    }

    [Function(Commit)]
    public async Task<RoundCommitted> CommitRound([ActivityTrigger] RoundStageInput input, CancellationToken ct)
    {
        var fed = input.Federation;
        var plan = await store.GetPlanAsync(fed, input.Round, ct) ?? throw new InvalidOperationException("no plan");
        var version = RoundCoordinator.VersionName(input.Round);
        var state = await store.TryGetStateAsync(fed, ct) ?? throw new InvalidOperationException($"Federation '{fed}' no longer exists.");
        var recorded = state.Versions.FirstOrDefault(v => v.Version == version);
        var summary = await store.GetOutputAsync<AggregateSummary>(fed, input.Round, RoundStages.Training, "aggregate", ct);
        if (recorded is not null && summary is not null)
            return new RoundCommitted(version, recorded.State == ModelVersionState.Promoted || state.PromotionHistory.Contains(version), recorded.Reason ?? "",
                new Dictionary<string, double>(recorded.Metrics), summary.Excluded, state.EpsilonSpent);

        var baseJson = await store.GetCheckpointAsync(fed, plan.BaseVersion, ct) ?? throw new InvalidOperationException($"Base version {plan.BaseVersion} is missing.");
        var baseCheckpoint = ModelCheckpoint.FromJson(baseJson);
        var json = await store.GetCheckpointAsync(fed, version, ct);
        if (json is null || summary is null)
        {
            AggregationOutcome outcome;
            if (plan.StageOf(RoundStages.Training)!.Secure)
            {
                var sum = await store.GetOutputAsync<SecAggResult>(fed, input.Round, RoundStages.Training, "sum", ct)
                    ?? throw new InvalidOperationException("The training stage has no sum.");
                outcome = RoundCoordinator.AggregateSecure(plan, baseCheckpoint.Parameters, sum);
            }
            else
            {
                // Plain path: the noised mean becomes the checkpoint below; charge before it is computed and written.
                await ChargeAsync(plan, ct);
                var updates = new List<(string, byte[], int)>();
                foreach (var id in input.Arrivals.Order())
                {
                    var upload = await store.GetMessageAsync<PlainUpdateUpload>(fed, input.Round, RoundStages.Training, RoundPhase.Upload, id, ct);
                    if (upload is not null) updates.Add((plan.ClientBySecAggId(id)!.ClientId, upload.Frame ?? [], upload.NumExamples));
                }
                outcome = RoundCoordinator.AggregatePlain(plan, baseCheckpoint.Parameters, updates, new CryptoRandom());
            }
            outcome.Metrics["bytesUploadedPerClient"] = await store.UploadedBytesAsync(fed, input.Round, RoundStages.Training, ct) / Math.Max(1.0, plan.Selected.Length);
            outcome.Metrics["bytesPlainPerClient"] = 4.0 * baseCheckpoint.Parameters.Length;
            summary = new AggregateSummary(outcome.Metrics, outcome.Excluded, outcome.NormViolation);
            if (json is null)
            {
                await store.PutOutputAsync(fed, input.Round, RoundStages.Training, "aggregate", summary, ct);
                json = await store.WriteCheckpointOnceAsync(fed, version, new ModelCheckpoint(baseCheckpoint.Config, baseCheckpoint.Preprocessor, outcome.Parameters).Validated().ToJson(), ct);
            }
            else
            {
                // The checkpoint was written by an earlier attempt whose summary was lost: keep the checkpoint, recompute only the figures.
                await store.PutOutputAsync(fed, input.Round, RoundStages.Training, "aggregate", summary, ct);
            }
        }
        var checkpoint = ModelCheckpoint.FromJson(json);
        var onnx = OnnxExporter.Export(checkpoint.Config, checkpoint.Parameters, Metadata(fed, version));
        await store.PutOnnxAsync(fed, version, onnx, ct);
        var metrics = new Dictionary<string, double>(summary.Metrics);
        var evaluation = await EvaluateAsync(plan.Config, checkpoint.Preprocessor, onnx, ct);
        if (evaluation is not null) foreach (var (k, v) in evaluation) metrics[k] = v;
        var current = state.Versions.FirstOrDefault(v => v.Version == state.CurrentVersion);
        double? currentAuroc = current is not null && current.Metrics.TryGetValue("auroc", out var a) ? a : null;
        var (passed, gateReason) = RoundCoordinator.Gate(plan.Config.Promotion, summary.NormViolation, evaluation?.GetValueOrDefault("auroc"), currentAuroc);
        var promote = passed && plan.Config.Promotion.AutoPromote;
        var versionState = !passed ? ModelVersionState.Rejected : promote ? ModelVersionState.Promoted : ModelVersionState.Candidate;
        var updated = await store.UpdateAsync(fed, s =>
        {
            var next = RoundCoordinator.Charge(s, plan);
            if (next.Versions.Any(v => v.Version == version)) return next;
            var info = new ModelVersionInfo(version, input.Round, time.GetUtcNow(), versionState, plan.BaseVersion, metrics, next.EpsilonSpent, checkpoint.Parameters.Length, gateReason);
            var versions = next.Versions.Select(v => promote && v.Version == next.CurrentVersion ? v with { State = ModelVersionState.Retired } : v).Append(info).ToArray();
            return next with
            {
                Versions = versions,
                CurrentVersion = promote ? version : next.CurrentVersion,
                PromotionHistory = promote && next.CurrentVersion is not null ? [.. next.PromotionHistory, next.CurrentVersion] : next.PromotionHistory,
                RoundsCompleted = next.RoundsCompleted + 1,
            };
        }, ct) ?? throw new InvalidOperationException($"Federation '{fed}' no longer exists.");
        await audit.AppendAsync(new AuditEvent(Platform, "model.version", $"federation/{fed}/model/{version}", passed ? AuditOutcome.Success : AuditOutcome.Failure,
            RoundRoutes.InstanceId(fed, input.Round), $"round {input.Round}: written encrypted with its ONNX export; {gateReason}; epsilon {updated.EpsilonSpent:F4}"), ct);
        if (promote)
            await audit.AppendAsync(new AuditEvent(Platform, AuditActions.ModelPromote, $"federation/{fed}/model/{version}", AuditOutcome.Success, null, $"round {input.Round}: {gateReason}"), ct);
        metrics["epsilon"] = updated.EpsilonSpent;
        return new RoundCommitted(version, promote, gateReason, metrics, summary.Excluded, updated.EpsilonSpent);
    }

    [Function(Audit)]
    public async Task<bool> AuditRound([ActivityTrigger] RoundAuditInput input, CancellationToken ct)
    {
        var outcome = input.Phase switch
        {
            RoundPhase.Completed => AuditOutcome.Success,
            RoundPhase.Refused => AuditOutcome.Denied,
            _ => AuditOutcome.Failure,
        };
        var detail = $"{input.Phase}" + (input.Version is null ? "" : $", version {input.Version}{(input.Promoted ? " promoted" : "")}") + (input.Reason is null ? "" : $": {input.Reason}");
        await audit.AppendAsync(new AuditEvent(input.Actor, AuditActions.RoundFinish, $"federation/{input.Federation}/round/{input.Round}", outcome, RoundRoutes.InstanceId(input.Federation, input.Round), detail), ct);
        return true;
    }

    private static string Resource(RoundInput input) => $"federation/{input.Federation}/round/{input.Round}";

    private static string Instance(RoundInput input) => RoundRoutes.InstanceId(input.Federation, input.Round);

    private static Dictionary<string, string> Metadata(string federation, string version) => new()
    {
        ["federation"] = federation,
        ["version"] = version,
    };

    /// <summary>Hold-out metrics of the exported file, or null without a hold-out set (or with a custom schema, which the cohort CSV cannot carry).</summary>
    private async Task<Dictionary<string, double>?> EvaluateAsync(FederationConfig config, Preprocessor preprocessor, byte[] onnx, CancellationToken ct)
    {
        if (config.HoldOut is null || config.Schema is not null) return null;
        var csv = await store.GetHoldOutAsync(config.HoldOut, ct);
        if (csv is null) return null;
        var imported = CohortCsv.Read(new StringReader(Encoding.UTF8.GetString(csv)), "holdout.csv");
        if (imported.Cohort.Patients.Count == 0) return null;
        return RoundCoordinator.Evaluate(onnx, preprocessor, imported.Cohort.Patients);
    }
}
