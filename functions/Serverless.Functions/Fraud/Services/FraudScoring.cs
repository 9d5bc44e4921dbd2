using System.Text.Json;
using Microsoft.Extensions.Options;
using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Training;
using Serverless.Functions.Hosting;
using Serverless.Security.Audit;
using Serverless.Security.Compliance;
using Serverless.Storage;

namespace Serverless.Functions.Fraud.Services;

/// <summary>
/// The process's one scorer: the served versions, each card's last k events (SQLite in the data directory,
/// committed after the batch's alerts are out) and the drift monitor. Micro-batches run one at a time, so
/// two events of a card always see each other in order. The scorer is rebuilt when the deployment record's
/// revision changes; after any failure inside a batch the history is reopened from its last commit, so a
/// retried message is scored again rather than taken for a duplicate.
/// </summary>
public sealed class FraudScoring(FraudModelRegistry registry, FraudStore store, IQueueStore queues, IAuditLog audit, DataDirectory data,
    IOptions<FraudOptions> options) : IComplianceCheckSource, IDisposable
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private SqliteCardHistoryStore? _history;
    private MicroBatchScorer? _scorer;
    private PsiMonitor? _drift;
    private long _revision = -1;
    private bool _driftAlerted;

    /// <summary>Scores one micro-batch; <paramref name="deliver"/> puts its alerts and refusals out before the history commits.</summary>
    public async Task<BatchResult> ScoreAsync(IReadOnlyList<CardEvent> events, Func<BatchResult, Task> deliver, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var deployment = await registry.CurrentAsync(cancellationToken);
            if (deployment.Champion is null)
                throw new FraudRefusedException(FraudRefusalCodes.NoChampion, "no champion fraud model is deployed: publish one and promote it", 409);
            if (_scorer is null || deployment.Revision != _revision) await RebuildAsync(deployment, cancellationToken);
            BatchResult result;
            try
            {
                result = _scorer!.Score(events);
                await deliver(result);
                _scorer.Commit();
            }
            catch
            {
                Reset();
                throw;
            }
            await AlertOnDriftAsync(deployment);
            return result;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>PSI per input feature since the scorer loaded, or null before any scorer with a reference ran.</summary>
    public DriftReport? Drift() => _drift?.Report();

    public async Task<IReadOnlyList<ComplianceCheck>> ChecksAsync(CancellationToken cancellationToken)
    {
        var deployment = await registry.CurrentAsync(cancellationToken);
        if (deployment.Champion is null) return [];   // fraud scoring is not in use
        var rule = $"fraud scoring inputs within the drift bound (PSI <= {options.Value.DriftAlertLevel:G3} per feature)";
        if (Drift() is not { } report)
            return [new ComplianceCheck(rule, false, "no drift reference: put an evaluation set (PUT /api/fraud/evaluation) and score events")];
        var worst = report.Features.OrderByDescending(f => f.Psi).Take(3).Select(f => $"{f.Feature} {f.Psi:F3}");
        return [new ComplianceCheck(rule, !report.Alert,
            $"{report.Observations} events since the scorer loaded {deployment.Champion}; " + (report.Alert ? "drifted: " + string.Join(", ", report.Alerts.Select(f => $"{f.Feature} {f.Psi:F3}")) : "largest: " + string.Join(", ", worst)))];
    }

    private async Task RebuildAsync(FraudDeployment deployment, CancellationToken cancellationToken)
    {
        Reset();
        var champion = await registry.LoadAsync(deployment.Champion!, cancellationToken)
            ?? throw new InvalidOperationException($"the deployed champion '{deployment.Champion}' is not published");
        var challenger = deployment.Challenger is { } c ? await registry.LoadAsync(c, cancellationToken) : null;
        var o = options.Value;
        if (await store.GetEvaluationAsync(cancellationToken) is { } set)
        {
            var reference = FraudDatasets.LatestSteps(FraudDatasets.BuildLabelled(set.Events, set.Labels, o.Steps));
            _drift = new PsiMonitor(EventFeatures.Names, reference, alertLevel: o.DriftAlertLevel, minimumObservations: o.DriftMinimumEvents);
        }
        else
        {
            _drift = null;
        }
        _driftAlerted = false;
        var directory = Path.Combine(data.Path, "fraud");
        Directory.CreateDirectory(directory);
        _history = new SqliteCardHistoryStore(Path.Combine(directory, "card-history.db"), o.Steps);
        _scorer = new MicroBatchScorer(new ScorerOptions
        {
            Champion = champion,
            Challenger = challenger,
            ChallengerFraction = challenger is null ? 0 : deployment.ChallengerFraction,
            Experiment = deployment.Experiment,
            Threshold = deployment.Threshold,
            Runtime = ScoringRuntime.OnnxRuntime,
            MaxBatch = o.MaxEventsPerMessage,
        }, _history, _drift);
        _scorer.WarmUp();
        _revision = deployment.Revision;
    }

    private async Task AlertOnDriftAsync(FraudDeployment deployment)
    {
        if (_driftAlerted || _drift?.Report() is not { Alert: true } report) return;
        _driftAlerted = true;
        var drifted = string.Join(", ", report.Alerts.Select(f => $"{f.Feature} PSI {f.Psi:F3}"));
        await audit.AppendAsync(new AuditEvent("platform", FraudAuditActions.DriftAlert, $"fraud-model/{deployment.Champion}", AuditOutcome.Failure, null,
            $"input drift after {report.Observations} events: {drifted}"));
        await queues.PutAsync(FraudStore.DriftAlertsQueue, JsonSerializer.SerializeToUtf8Bytes(new { model = deployment.Champion, report }, FraudJson.Options));
    }

    private void Reset()
    {
        _scorer?.Dispose();
        _scorer = null;
        _history?.Dispose();
        _history = null;
        _revision = -1;
    }

    public void Dispose()
    {
        Reset();
        _lock.Dispose();
    }
}
