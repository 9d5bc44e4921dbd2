using Serverless.Federation.SecureAggregation;
using Serverless.Federation.Simulation;
using Serverless.Federation.Strategies;
using Serverless.Model.Evaluation;
using Serverless.Model.Training;

namespace Serverless.Fraud.Training;

/// <summary>A trained scorer: architecture, weights, and the version string alerts carry.</summary>
public sealed record FraudModel(string Version, ModelConfig Config, float[] Parameters)
{
    public int Steps => Config.Steps;
}

/// <summary>The two models of the issue: the CNN-LSTM over the last k events, and a logistic-regression baseline on the current event.</summary>
public static class FraudModels
{
    /// <summary>CNN-LSTM (model/Serverless.Model) over [k, F]: causal conv (kernel 3) sees consecutive events, the LSTM the whole window.</summary>
    public static ModelConfig Sequence(int steps) => new()
    {
        Features = EventFeatures.Count,
        Steps = steps,
        Architecture = ArchitectureKind.CnnLstm,
        ConvChannels = 16,
        KernelSize = 3,
        LstmHidden = 16,
    };

    /// <summary>Logistic regression on the current (last real) event's features plus the static ones; same input tensor.</summary>
    public static ModelConfig Baseline(int steps) => Sequence(steps) with { Architecture = ArchitectureKind.LastVisitLogistic };

    public static TrainerOptions DefaultTraining(int seed = 1) => new()
    {
        Optimizer = OptimizerKind.Adam,
        LearningRate = 0.005,
        Epochs = 20,
        BatchSize = 64,
        GradientClipNorm = 5,
        Seed = seed,
        ValidationFraction = 0.15,
        Patience = 4,
    };

    /// <summary>Central training (all banks pooled) from a seeded initialization.</summary>
    public static FraudModel Train(string version, ModelConfig config, FraudDataset train, TrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        var model = new CnnLstm(config);
        var run = new Trainer(model, options ?? DefaultTraining()).Train(train.Data, model.InitializeParameters(options?.Seed ?? 1));
        return new FraudModel(version, config, run.Parameters);
    }

    /// <summary>
    /// Federated training across banks with the federation library: every bank trains on its own rows only
    /// (<see cref="FraudDataset.Banks"/>), FedAvg weights the updates by examples, and with
    /// <see cref="FraudFederationOptions.SecureAggregation"/> the server sees only the sum of masked updates (Bonawitz et al.).
    /// The same seeded initialization as <see cref="Train"/>, so the two arms differ only in where the data stays.
    /// </summary>
    /// <exception cref="ArgumentException">fewer than two banks hold rows.</exception>
    public static FraudModel TrainFederated(string version, ModelConfig config, FraudDataset train, FraudFederationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        var o = options ?? new FraudFederationOptions();
        var banks = train.Banks.Distinct().Order().ToArray();
        if (banks.Length < 2) throw new ArgumentException($"federated training needs at least two banks; the rows come from {banks.Length}", nameof(train));
        var trainer = DefaultTraining(o.Seed) with { ValidationFraction = 0, Patience = 0 };
        var clients = banks.Select(b =>
        {
            var rows = Enumerable.Range(0, train.Banks.Length).Where(i => train.Banks[i] == b).ToArray();
            var local = train.Data.Subset(rows);
            return (IFederatedClient)new ModelClient($"bank-{b}", local, local, config, trainer);
        }).ToArray();
        var strategy = new FedAvg(new FedAvgOptions { LocalEpochs = o.LocalEpochs, LearningRate = o.LearningRate, FractionEvaluate = 0, MinFitClients = banks.Length });
        var simulation = new SimulationOptions
        {
            Rounds = o.Rounds, Seed = o.Seed,
            SecureAggregation = o.SecureAggregation ? new SecureAggregationOptions { RingBits = 32, ClipRange = o.SecureClipRange } : null,
        };
        var result = new FederatedSimulator(strategy, clients, simulation).Run(new CnnLstm(config).InitializeParameters(o.Seed));
        return new FraudModel(version, config, result.Parameters);
    }

    public static double Auroc(FraudModel model, FraudDataset data)
    {
        var p = new CnnLstm(model.Config).Predict(model.Parameters, data.Data);
        return Metrics.Auroc(p, data.Data.Labels);
    }

    /// <summary>Precision among events flagged at the threshold where 1 % of legitimate events are flagged.</summary>
    public static double PrecisionAtFalsePositiveRate(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels, double fpr)
    {
        var negatives = new List<float>();
        for (var i = 0; i < scores.Length; i++) if (labels[i] == 0) negatives.Add(scores[i]);
        if (negatives.Count == 0) return double.NaN;
        negatives.Sort();
        // The smallest threshold with at most fpr of negatives strictly above it.
        var index = Math.Clamp((int)Math.Ceiling((1 - fpr) * negatives.Count) - 1, 0, negatives.Count - 1);
        var threshold = negatives[index];
        int tp = 0, fp = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            if (scores[i] <= threshold) continue;
            if (labels[i] == 1) tp++; else fp++;
        }
        return tp + fp == 0 ? double.NaN : (double)tp / (tp + fp);
    }
}

/// <summary>Federated training across banks (<see cref="FraudModels.TrainFederated"/>).</summary>
public sealed record FraudFederationOptions
{
    /// <summary>FedAvg rounds.</summary>
    public int Rounds { get; init; } = 10;

    /// <summary>Local epochs per round: rounds x local epochs matches central training's 20 epochs.</summary>
    public int LocalEpochs { get; init; } = 2;

    /// <summary>Adam's learning rate at each bank (central training's).</summary>
    public double LearningRate { get; init; } = 0.005;

    /// <summary>Secure aggregation of the banks' updates (on by default: no bank's update is visible to the server).</summary>
    public bool SecureAggregation { get; init; } = true;

    /// <summary>Per-coordinate bound of an update in the secure sum's fixed-point encoding (larger coordinates are clamped).</summary>
    public float SecureClipRange { get; init; } = 4f;

    public int Seed { get; init; } = 1;
}
