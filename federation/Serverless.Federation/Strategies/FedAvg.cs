using Serverless.Federation.Aggregation;

namespace Serverless.Federation.Strategies;

/// <summary>How visible updates are combined.</summary>
public enum AggregatorKind
{
    /// <summary>FedAvg: mean weighted by examples (McMahan et al. 2017).</summary>
    WeightedMean,

    /// <summary>Coordinate-wise median (Yin et al. 2018).</summary>
    CoordinateMedian,

    /// <summary>Coordinate-wise trimmed mean: drop the TrimFraction largest and smallest per coordinate.</summary>
    TrimmedMean,

    /// <summary>Multi-Krum (Blanchard et al. 2017): average the m updates with the smallest Krum scores.</summary>
    MultiKrum,
}

/// <summary>Options of <see cref="FedAvg"/>.</summary>
public sealed record FedAvgOptions
{
    /// <summary>Fraction of available clients sampled per round.</summary>
    public double FractionFit { get; init; } = 1.0;

    /// <summary>Lower bound on sampled clients.</summary>
    public int MinFitClients { get; init; } = 2;

    /// <summary>Fraction of clients asked to evaluate.</summary>
    public double FractionEvaluate { get; init; } = 1.0;

    /// <summary>Local epochs per round.</summary>
    public int LocalEpochs { get; init; } = 1;

    /// <summary>Local learning rate.</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>FedProx's mu (Li et al. 2020); 0 is FedAvg.</summary>
    public double ProximalMu { get; init; }

    /// <summary>Step size applied to the aggregated delta (1 = replace by the average model).</summary>
    public double ServerLearningRate { get; init; } = 1.0;

    /// <summary>How visible updates are combined.</summary>
    public AggregatorKind Aggregator { get; init; } = AggregatorKind.WeightedMean;

    /// <summary>Trimmed mean: fraction cut from each end per coordinate.</summary>
    public double TrimFraction { get; init; } = 0.2;

    /// <summary>Multi-Krum: assumed number of Byzantine clients f.</summary>
    public int ByzantineClients { get; init; } = 1;

    /// <summary>Multi-Krum: updates averaged (0 = n - f).</summary>
    public int KrumSelect { get; init; }

    /// <summary>When set, updates are scored and flagged ones are excluded before aggregation.</summary>
    public AnomalyOptions? AnomalyFilter { get; init; }

    /// <summary>Client-side clip norm sent in the fit config (0 = none).</summary>
    public double ClientClipNorm { get; init; }

    /// <summary>Seed for client sampling and per-client seeds.</summary>
    public int Seed { get; init; }

    /// <summary>Checks ranges.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a value out of range.</exception>
    public FedAvgOptions Validated()
    {
        if (!(FractionFit > 0 && FractionFit <= 1)) throw new ArgumentOutOfRangeException(nameof(FractionFit));
        if (!(FractionEvaluate >= 0 && FractionEvaluate <= 1)) throw new ArgumentOutOfRangeException(nameof(FractionEvaluate));
        if (MinFitClients < 1) throw new ArgumentOutOfRangeException(nameof(MinFitClients));
        if (LocalEpochs < 1) throw new ArgumentOutOfRangeException(nameof(LocalEpochs));
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate));
        if (!(ProximalMu >= 0)) throw new ArgumentOutOfRangeException(nameof(ProximalMu));
        if (!(ServerLearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(ServerLearningRate));
        if (!(TrimFraction >= 0 && TrimFraction < 0.5)) throw new ArgumentOutOfRangeException(nameof(TrimFraction));
        if (ByzantineClients < 0 || KrumSelect < 0) throw new ArgumentOutOfRangeException(nameof(ByzantineClients));
        return this;
    }
}

/// <summary>
/// Federated averaging (McMahan et al. 2017), weighted by sample count; FedProx when
/// <see cref="FedAvgOptions.ProximalMu"/> &gt; 0 (the proximal term lives in the clients' local
/// training, so the server side is FedAvg's); robust combiners and anomaly filtering as options
/// for when updates are visible (secure aggregation off).
/// </summary>
public sealed class FedAvg : IStrategy
{
    private readonly FedAvgOptions _o;

    /// <summary>Creates the strategy.</summary>
    public FedAvg(FedAvgOptions? options = null) => _o = (options ?? new FedAvgOptions()).Validated();

    /// <summary>FedProx with the given mu.</summary>
    public static FedAvg FedProx(double mu, FedAvgOptions? options = null) =>
        new((options ?? new FedAvgOptions()) with { ProximalMu = mu });

    /// <summary>The options in force.</summary>
    public FedAvgOptions Options => _o;

    /// <inheritdoc />
    public IReadOnlyList<FitInstruction> ConfigureRound(int round, float[] globalParameters, IReadOnlyList<string> availableClients)
    {
        ArgumentNullException.ThrowIfNull(globalParameters);
        var chosen = Sample(availableClients, _o.FractionFit, _o.MinFitClients, round);
        return chosen.Select((id, i) => new FitInstruction(id, globalParameters,
            new FitConfig(round, _o.LocalEpochs, _o.LearningRate, _o.ProximalMu, StableHash.Of(_o.Seed, round, id), _o.ClientClipNorm))).ToArray();
    }

    /// <inheritdoc />
    public AggregateResult AggregateRound(int round, float[] globalParameters, IReadOnlyList<FitResult> results)
    {
        ArgumentNullException.ThrowIfNull(globalParameters);
        var excluded = new List<RoundExclusion>();
        var kept = new List<FitResult>();
        foreach (var r in results)
        {
            if (r.Delta is null || r.Delta.Length != globalParameters.Length) excluded.Add(new(r.ClientId, $"update has {r.Delta?.Length ?? 0} entries, expected {globalParameters.Length}"));
            else if (r.NumExamples <= 0) excluded.Add(new(r.ClientId, "reported no training examples"));
            else if (!AllFinite(r.Delta)) excluded.Add(new(r.ClientId, "update holds NaN or infinite values"));
            else kept.Add(r);
        }
        var metrics = new Dictionary<string, double>();
        if (_o.AnomalyFilter is { } anomaly && kept.Count >= 3)
        {
            var scores = AnomalyDetector.Score(kept.Select(r => r.Delta).ToArray(), anomaly);
            var survivors = new List<FitResult>();
            for (var i = 0; i < kept.Count; i++)
                if (scores[i].Flagged && anomaly.Exclude) excluded.Add(new(kept[i].ClientId, scores[i].Reason!));
                else survivors.Add(kept[i]);
            metrics["anomalies_flagged"] = scores.Count(s => s.Flagged);
            kept = survivors;
        }
        if (kept.Count == 0) throw new InvalidOperationException($"Round {round}: no usable update to aggregate.");

        var deltas = kept.Select(r => r.Delta).ToArray();
        var aggregate = new float[globalParameters.Length];
        switch (_o.Aggregator)
        {
            case AggregatorKind.WeightedMean:
                Aggregators.WeightedMean(deltas, kept.Select(r => (double)r.NumExamples).ToArray(), aggregate);
                break;
            case AggregatorKind.CoordinateMedian:
                Aggregators.CoordinateMedian(deltas, aggregate);
                break;
            case AggregatorKind.TrimmedMean:
                Aggregators.TrimmedMean(deltas, _o.TrimFraction, aggregate);
                break;
            case AggregatorKind.MultiKrum:
                var selected = Aggregators.MultiKrum(deltas, _o.ByzantineClients, _o.KrumSelect, aggregate);
                for (var i = 0; i < kept.Count; i++)
                    if (Array.IndexOf(selected, i) < 0) excluded.Add(new(kept[i].ClientId, "not selected by Multi-Krum (far from its neighbours)"));
                break;
        }
        var next = new float[globalParameters.Length];
        var lr = (float)_o.ServerLearningRate;
        for (var i = 0; i < next.Length; i++) next[i] = globalParameters[i] + lr * aggregate[i];
        metrics["clients_aggregated"] = kept.Count;
        metrics["examples"] = kept.Sum(r => (double)r.NumExamples);
        metrics["update_norm"] = Aggregators.Norm(aggregate);
        return new AggregateResult(next, metrics, excluded);
    }

    /// <inheritdoc />
    public IReadOnlyList<EvaluateInstruction> ConfigureEvaluation(int round, float[] parameters, IReadOnlyList<string> availableClients)
    {
        if (_o.FractionEvaluate == 0) return [];
        return Sample(availableClients, _o.FractionEvaluate, 1, round + 7919).Select(id => new EvaluateInstruction(id, parameters, round)).ToArray();
    }

    /// <inheritdoc />
    public EvaluationSummary AggregateEvaluation(int round, IReadOnlyList<EvaluateResult> results) => Aggregators.WeightedEvaluation(results);

    private string[] Sample(IReadOnlyList<string> available, double fraction, int minimum, int round)
    {
        ArgumentNullException.ThrowIfNull(available);
        var count = Math.Min(available.Count, Math.Max(minimum, (int)Math.Ceiling(fraction * available.Count)));
        if (count < minimum) throw new InvalidOperationException($"Round {round}: {available.Count} clients available, {minimum} required.");
        if (count == available.Count) return available.ToArray();
        var rng = new Random(StableHash.Of(_o.Seed, round));
        return available.OrderBy(_ => rng.Next()).Take(count).Order(StringComparer.Ordinal).ToArray();
    }

    private static bool AllFinite(float[] v)
    {
        foreach (var x in v) if (!float.IsFinite(x)) return false;
        return true;
    }
}
