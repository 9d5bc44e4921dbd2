using Serverless.Federation.Compression;
using Serverless.Model.Evaluation;

namespace Serverless.Federation.Simulation;

/// <summary>A federation client as the simulator sees it: it trains from given parameters and evaluates on its own data.</summary>
public interface IFederatedClient
{
    /// <summary>Stable id.</summary>
    string Id { get; }

    /// <summary>Local training from the instruction's parameters; the delta is local minus global.</summary>
    FitResult Fit(FitInstruction instruction);

    /// <summary>Evaluation on the client's hold-out data.</summary>
    EvaluateResult Evaluate(EvaluateInstruction instruction);
}

/// <summary>A hospital training the CNN-LSTM (or a baseline architecture) on its own cohort with the model's <see cref="Trainer"/>.</summary>
public sealed class ModelClient : IFederatedClient
{
    private readonly SequenceDataset _train;
    private readonly SequenceDataset _test;
    private readonly CnnLstm _model;
    private readonly TrainerOptions _trainerOptions;

    /// <inheritdoc />
    public string Id { get; }

    /// <summary>Training examples.</summary>
    public int Examples => _train.Count;

    /// <param name="id">Client id.</param>
    /// <param name="train">Local training data.</param>
    /// <param name="test">Local hold-out data.</param>
    /// <param name="config">The shared model configuration.</param>
    /// <param name="trainerOptions">Base optimiser settings; epochs, learning rate, mu and seed come from each round's config.</param>
    /// <param name="flipLabels">Poisoning: train on flipped labels (label-flipping attacker).</param>
    public ModelClient(string id, SequenceDataset train, SequenceDataset test, ModelConfig config, TrainerOptions trainerOptions, bool flipLabels = false)
    {
        Id = id;
        _train = flipLabels ? FlipLabels(train) : train;
        _test = test;
        _model = new CnnLstm(config);
        _trainerOptions = trainerOptions;
    }

    /// <inheritdoc />
    public FitResult Fit(FitInstruction instruction)
    {
        var c = instruction.Config;
        var options = _trainerOptions with
        {
            Epochs = c.LocalEpochs, LearningRate = c.LearningRate, ProximalMu = c.ProximalMu, Seed = c.Seed, Patience = 0, ValidationFraction = 0,
            // Patient-level DP: a simulation seeds the sampling and noise per round and client, so it replays.
            DpSgd = c.DpSgd is { } dp
                ? new DpSgdOptions { ClipNorm = dp.ClipNorm, NoiseMultiplier = dp.NoiseMultiplier, ExpectedBatchSize = dp.ExpectedBatchSize, Randomness = new Random(StableHash.Of(c.Seed, c.Round, Id)) }
                : null,
        };
        var trainer = new Trainer(_model, options);
        var result = trainer.Train(_train, instruction.Parameters, null, c.ProximalMu > 0 ? instruction.Parameters : null);
        var delta = DeltaEncoding.Delta(result.Parameters, instruction.Parameters);
        // Under DP-SGD the training loss is a non-private statistic of the records: it stays on the client.
        var metrics = new Dictionary<string, double>();
        if (c.DpSgd is null) metrics["train_loss"] = result.Epochs.Count > 0 ? result.Epochs[^1].TrainLoss : double.NaN;
        else metrics["dp_steps"] = result.Steps;
        return new FitResult(Id, delta, _train.Count, metrics);
    }

    /// <inheritdoc />
    public EvaluateResult Evaluate(EvaluateInstruction instruction)
    {
        var report = Metrics.Evaluate(_model, instruction.Parameters, _test);
        return new EvaluateResult(Id, _test.Count, report.LogLoss, new Dictionary<string, double> { ["auroc"] = report.Auroc, ["accuracy"] = report.Accuracy });
    }

    /// <summary>The dataset with every label y replaced by classes - 1 - y.</summary>
    public static SequenceDataset FlipLabels(SequenceDataset d)
    {
        var labels = d.Labels.Select(y => d.Classes - 1 - y).ToArray();
        return new SequenceDataset(d.Count, d.Steps, d.Features, d.Classes, d.Values, d.Mask, labels);
    }
}

/// <summary>Poisoning attacks that act on the update (label flipping acts on the data: see <see cref="ModelClient"/>).</summary>
public enum AttackKind
{
    /// <summary>Honest.</summary>
    None,

    /// <summary>Sends -factor * its honest update.</summary>
    SignFlip,

    /// <summary>Model replacement (Bagdasaryan et al. 2020): boosts its update by factor (about the number of clients).</summary>
    Scaling,

    /// <summary>Trains on flipped labels (the wrapped client must be built with flipLabels).</summary>
    LabelFlip,

    /// <summary>Sends Gaussian noise with factor times the RMS of its honest update per coordinate.</summary>
    RandomNoise,
}

/// <summary>Wraps a client and corrupts its updates.</summary>
public sealed class AttackingClient(IFederatedClient inner, AttackKind attack, double factor, int seed) : IFederatedClient
{
    /// <inheritdoc />
    public string Id => inner.Id;

    /// <summary>The attack.</summary>
    public AttackKind Attack => attack;

    /// <inheritdoc />
    public FitResult Fit(FitInstruction instruction)
    {
        var honest = inner.Fit(instruction);
        var d = honest.Delta;
        var poisoned = new float[d.Length];
        switch (attack)
        {
            case AttackKind.SignFlip:
                for (var i = 0; i < d.Length; i++) poisoned[i] = (float)(-factor * d[i]);
                break;
            case AttackKind.Scaling:
                for (var i = 0; i < d.Length; i++) poisoned[i] = (float)(factor * d[i]);
                break;
            case AttackKind.RandomNoise:
                var rms = Math.Sqrt(d.Sum(x => (double)x * x) / Math.Max(1, d.Length));
                Serverless.Privacy.DifferentialPrivacy.GaussianMechanism.AddGaussianNoise(poisoned, factor * rms, new Random(seed + instruction.Config.Round));
                break;
            default:
                Array.Copy(d, poisoned, d.Length);
                break;
        }
        return honest with { Delta = poisoned };
    }

    /// <inheritdoc />
    public EvaluateResult Evaluate(EvaluateInstruction instruction) => inner.Evaluate(instruction);
}
