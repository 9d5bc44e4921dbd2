using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Training;
using Serverless.Functions.Hosting;
using Serverless.Security.Compliance;

namespace Serverless.Functions.Fraud.Services;

/// <summary>
/// The process's one scorer: the served versions, each card's last k events (SQLite in the data directory,
/// committed after the batch's alerts are out) and the drift monitor. Micro-batches run one at a time, so
/// two events of a card always see each other in order. The scorer is rebuilt when the deployment record's
/// revision changes; after any failure inside a batch the history is reopened from its last commit, so a
/// retried message is scored again rather than taken for a duplicate. The drift window is per deployment
/// revision and shared: each instance stores its bin counts at most once a second (<see cref="FraudStore.PutDriftCountsAsync"/>),
/// restores its own after a restart, and reports and alerts on the pool of every instance's window.
/// </summary>
public sealed class FraudScoring(FraudModelRegistry registry, FraudStore store, IQueueStore queues, IAuditLog audit, DataDirectory data,
    IOptions<FraudOptions> options, ILogger<FraudScoring> logger) : IComplianceCheckSource, IDisposable, IAsyncDisposable
{
    private static readonly long DriftSyncInterval = Stopwatch.Frequency;
    private IReadOnlyList<DriftCounts> _otherWindows = [];
    private long _lastDriftSync;
    private string? _instance;
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
            await SyncDriftAsync(force: false, cancellationToken);
            await AlertOnDriftAsync(deployment, cancellationToken);
            return result;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>PSI per input feature over every instance's window under the current deployment, or null without a champion or a reference.</summary>
    public async Task<DriftReport?> DriftAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var deployment = await registry.CurrentAsync(cancellationToken);
            if (deployment.Champion is null) return null;
            if (_scorer is null || deployment.Revision != _revision) await RebuildAsync(deployment, cancellationToken);
            await SyncDriftAsync(force: true, cancellationToken);
            return _drift?.Report(_otherWindows);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<IReadOnlyList<ComplianceCheck>> ChecksAsync(CancellationToken cancellationToken)
    {
        var deployment = await registry.CurrentAsync(cancellationToken);
        if (deployment.Champion is null) return [];   // fraud scoring is not in use
        var rule = $"fraud scoring inputs within the drift bound (PSI <= {options.Value.DriftAlertLevel:G3} per feature)";
        if (await DriftAsync(cancellationToken) is not { } report)
            return [new ComplianceCheck(rule, false, "no drift reference: put an evaluation set (PUT /api/fraud/evaluation) and score events")];
        var worst = report.Features.OrderByDescending(f => f.Psi).Take(3).Select(f => $"{f.Feature} {f.Psi:F3}");
        return [new ComplianceCheck(rule, !report.Alert,
            $"{report.Observations} events since {deployment.Champion} was deployed (revision {deployment.Revision}); " + (report.Alert ? "drifted: " + string.Join(", ", report.Alerts.Select(f => $"{f.Feature} {f.Psi:F3}")) : "largest: " + string.Join(", ", worst)))];
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
            var mine = await store.GetDriftCountsAsync(deployment.Revision, Instance, cancellationToken);
            if (_drift.Fits(mine)) _drift.Add(mine!);
            else if (mine is not null) logger.LogWarning("This instance's stored drift window does not fit the reference; starting a new one");
        }
        else
        {
            _drift = null;
        }
        _driftAlerted = false;
        _otherWindows = [];
        _lastDriftSync = 0;
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

    /// <summary>This instance's name among the drift windows: kept in the data directory, which is the instance's own.</summary>
    private string Instance
    {
        get
        {
            if (_instance is not null) return _instance;
            var file = Path.Combine(data.Path, "fraud", "instance-id");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            if (!File.Exists(file) || File.ReadAllText(file).Trim() is not { Length: 16 } id || !id.All(char.IsAsciiHexDigitLower))
            {
                id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
                File.WriteAllText(file, id);
            }
            return _instance = id;
        }
    }

    /// <summary>Stores this instance's window and reads the others', at most once a second unless forced.</summary>
    private async Task SyncDriftAsync(bool force, CancellationToken cancellationToken)
    {
        if (_drift is null || (!force && Stopwatch.GetTimestamp() - _lastDriftSync < DriftSyncInterval)) return;
        var revision = _revision;
        await store.PutDriftCountsAsync(revision, Instance, _drift.Counts(), cancellationToken);
        var others = new List<DriftCounts>();
        foreach (var (instance, counts) in await store.ListDriftCountsAsync(revision, cancellationToken))
        {
            if (instance == Instance) continue;
            if (_drift.Fits(counts)) others.Add(counts!);
            else logger.LogWarning("The drift window of instance {Instance} does not fit the reference; it is left out of the report", instance);
        }
        _otherWindows = others;
        _lastDriftSync = Stopwatch.GetTimestamp();
    }

    private async Task AlertOnDriftAsync(FraudDeployment deployment, CancellationToken cancellationToken)
    {
        if (_driftAlerted || _drift?.Report(_otherWindows) is not { Alert: true } report) return;
        _driftAlerted = true;
        if (!await store.TryClaimDriftAlertAsync(deployment.Revision, cancellationToken)) return;   // another instance raised it
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

    /// <summary>Stores the drift window one last time (a clean stop loses none of it; a crash, at most a second's), then disposes.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_drift is not null && _revision >= 0) await store.PutDriftCountsAsync(_revision, Instance, _drift.Counts(), CancellationToken.None);
        }
        catch (Exception e)
        {
            logger.LogWarning("The drift window was not stored at shutdown ({Error})", e.GetType().Name);
        }
        Dispose();
    }
}
