using System.Numerics.Tensors;

namespace Serverless.Model.Training;

public enum OptimizerKind
{
    /// <summary>Adam (Kingma and Ba 2015) with decoupled weight decay (AdamW, Loshchilov and Hutter 2019).</summary>
    Adam,

    /// <summary>SGD with heavy-ball momentum; weight decay as an L2 term in the gradient.</summary>
    Sgd,
}

/// <summary>How <see cref="Trainer"/> trains. Defaults suit the generated cohort.</summary>
public sealed record TrainerOptions
{
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    public double LearningRate { get; init; } = 0.01;

    /// <summary>Applied to weight matrices only (not biases).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradients with a larger global L2 norm are scaled down to it; 0 disables clipping.</summary>
    public double GradientClipNorm { get; init; } = 5.0;

    public int Epochs { get; init; } = 20;
    public int BatchSize { get; init; } = 32;
    public int Seed { get; init; } = 1;

    /// <summary>Epochs without validation improvement before stopping; 0 disables early stopping.</summary>
    public int Patience { get; init; } = 3;

    /// <summary>Share of the training set held out for early stopping when no validation set is passed (0 = none).</summary>
    public double ValidationFraction { get; init; }

    public double Momentum { get; init; } = 0.9;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>FedProx (Li et al. 2020) coefficient: adds (mu/2)·||w - w_ref||² to the local loss. 0 = plain training.</summary>
    public double ProximalMu { get; init; }

    /// <summary>Stops after this many optimizer steps in total (0 = no limit); lets a federation fix local work.</summary>
    public int MaxSteps { get; init; }

    /// <summary>
    /// Names of parameter tensors (see <see cref="ParameterLayout"/>) kept at their initial values: their
    /// gradient is zeroed before clipping and they get no weight decay. The HE-friendly CNN-LSTM freezes
    /// <c>lstm.R</c> at zero so its encrypted depth grows by one level per visit instead of seven.
    /// </summary>
    public IReadOnlyList<string> FrozenTensors { get; init; } = [];

    /// <summary>
    /// Patient-level DP-SGD (null = ordinary training). When set, batches are Poisson-sampled with
    /// expected size <see cref="DpSgdOptions.ExpectedBatchSize"/> (<see cref="BatchSize"/> is ignored), each
    /// record's gradient is clipped (<see cref="GradientClipNorm"/> is ignored) and noise is added; no
    /// validation split is carved from the training set (model selection on it would spend privacy).
    /// </summary>
    public DpSgdOptions? DpSgd { get; init; }

    public TrainerOptions Validated()
    {
        DpSgd?.Validated();
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "must be positive");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "must be non-negative");
        if (!(GradientClipNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), GradientClipNorm, "must be non-negative");
        if (Epochs is < 1 or > 100_000) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "1..100000");
        if (BatchSize is < 1 or > 65_536) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "1..65536");
        if (Patience < 0) throw new ArgumentOutOfRangeException(nameof(Patience), Patience, "must be non-negative");
        if (!(ValidationFraction >= 0 && ValidationFraction < 1)) throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "0..1");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "0..1");
        if (!(Beta1 >= 0 && Beta1 < 1) || !(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), "Adam betas must be in [0, 1)");
        if (!(Epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "must be positive");
        if (!(ProximalMu >= 0) || !double.IsFinite(ProximalMu)) throw new ArgumentOutOfRangeException(nameof(ProximalMu), ProximalMu, "must be non-negative");
        if (MaxSteps < 0) throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "must be non-negative");
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, null);
        ArgumentNullException.ThrowIfNull(FrozenTensors);
        return this;
    }
}

/// <summary>Loss after one epoch (training loss includes the proximal term when FedProx is on).</summary>
public sealed record EpochReport(int Epoch, double TrainLoss, double? ValidationLoss);

/// <summary>Trained parameters (the best validation epoch's when early stopping ran) and the history.</summary>
public sealed record TrainingResult(float[] Parameters, IReadOnlyList<EpochReport> Epochs, int BestEpoch, long SamplesSeen, int Steps);

/// <summary>
/// Mini-batch training of a <see cref="CnnLstm"/> from given initial parameters. Deterministic: the only
/// randomness is the seeded shuffle, every sum runs in a fixed order on one thread, so the same inputs
/// and seed give bit-identical parameters.
/// </summary>
public sealed class Trainer
{
    private readonly CnnLstm _model;
    private readonly TrainerOptions _options;

    public Trainer(CnnLstm model, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        _model = model;
        _options = options.Validated();
    }

    public TrainerOptions Options => _options;

    /// <summary>
    /// Trains on <paramref name="train"/> starting from <paramref name="initialParameters"/> (not modified) and
    /// returns new parameters. Early stopping uses <paramref name="validation"/>, or a seeded split of
    /// <see cref="TrainerOptions.ValidationFraction"/> of the training set. With FedProx on, pass the
    /// global parameters as <paramref name="proximalReference"/> (defaults to the initial parameters).
    /// </summary>
    public TrainingResult Train(SequenceDataset train, ReadOnlySpan<float> initialParameters, SequenceDataset? validation = null, float[]? proximalReference = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        _model.CheckInputs(initialParameters, train);
        if (validation is not null) _model.CheckInputs(initialParameters, validation);
        if (train.Count == 0) throw new ArgumentException("training set is empty", nameof(train));
        var o = _options;
        var n = _model.ParameterCount;
        if (proximalReference is not null && proximalReference.Length != n)
            throw new ArgumentException($"proximal reference has {proximalReference.Length} entries, the model needs {n}", nameof(proximalReference));

        if (o.DpSgd is not null) return TrainPrivately(train, initialParameters, validation, proximalReference, o.DpSgd);

        if (validation is null && o.ValidationFraction > 0 && o.Patience > 0 && train.Count >= 10)
            (validation, train) = train.Split(o.ValidationFraction, unchecked(o.Seed * 31 + 7));
        var early = validation is { Count: > 0 } && o.Patience > 0;

        var (p, reference, grad, m1, m2) = OptimizerState(initialParameters, proximalReference);
        var decayMask = DecayMask();
        var frozen = FrozenRanges();
        var epochs = new EpochLog(_model, early ? validation : null, o.Patience, p);

        var batch = Math.Min(o.BatchSize, train.Count);
        var ws = _model.Network.CreateWorkspace(batch);
        var stride = train.Steps * train.Features;
        var xb = new float[batch * stride];
        var mb = new float[batch * train.Steps];
        var yb = new int[batch];
        var order = new int[train.Count];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        var rng = new Random(o.Seed);
        long samples = 0;
        var step = 0;

        for (var epoch = 1; epoch <= o.Epochs; epoch++)
        {
            rng.Shuffle(order);
            double lossSum = 0;
            var seen = 0;
            for (var start = 0; start < order.Length; start += batch)
            {
                var size = Math.Min(batch, order.Length - start);
                for (var b = 0; b < size; b++)
                {
                    var src = order[start + b];
                    train.Values.AsSpan(src * stride, stride).CopyTo(xb.AsSpan(b * stride));
                    train.Mask.AsSpan(src * train.Steps, train.Steps).CopyTo(mb.AsSpan(b * train.Steps));
                    yb[b] = train.Labels[src];
                }
                double loss = _model.Network.LossAndGradient(p, xb.AsSpan(0, size * stride), mb.AsSpan(0, size * train.Steps), yb.AsSpan(0, size), size, ws, grad);
                if (reference is not null) loss += AddProximal(p, reference, grad, (float)o.ProximalMu);
                if (!double.IsFinite(loss)) throw new InvalidOperationException($"training diverged at epoch {epoch} (loss {loss}); lower the learning rate");
                foreach (var (offset, length) in frozen) grad.AsSpan(offset, length).Clear();
                lossSum += loss * size;
                seen += size;
                Clip(grad, o.GradientClipNorm);
                step++;
                Update(p, grad, m1, m2, decayMask, step);
                samples += size;
                if (o.MaxSteps > 0 && step >= o.MaxSteps) break;
            }

            if (epochs.EndEpoch(epoch, lossSum / Math.Max(1, seen))) break;
            if (o.MaxSteps > 0 && step >= o.MaxSteps) break;
        }
        return new TrainingResult(epochs.Result, epochs.History, epochs.BestEpoch, samples, step);
    }

    // The weights, the proximal term's anchor, the gradient and the moment buffers (Adam's second only when used).
    private (float[] Weights, float[]? Reference, float[] Gradient, float[] FirstMoment, float[] SecondMoment) OptimizerState(
        ReadOnlySpan<float> initialParameters, float[]? proximalReference)
    {
        var n = _model.ParameterCount;
        var reference = _options.ProximalMu > 0 ? (proximalReference ?? initialParameters.ToArray()) : null;
        return (initialParameters.ToArray(), reference, new float[n], new float[n], _options.Optimizer == OptimizerKind.Adam ? new float[n] : []);
    }

    /// <summary>
    /// DP-SGD: Poisson-sampled batches, per-record clipped gradients, Gaussian noise of std sigma C on their
    /// sum, divided by the expected batch size; then the same optimiser step as ordinary training (the
    /// proximal term and weight decay depend on the weights only, not on the records, so they add no leakage).
    /// Steps taken equal <see cref="DpSgdOptions.PlannedSteps"/> exactly, which is what the accountant charges.
    /// </summary>
    private TrainingResult TrainPrivately(SequenceDataset train, ReadOnlySpan<float> initialParameters, SequenceDataset? validation, float[]? proximalReference, DpSgdOptions dp)
    {
        var o = _options;
        var n = _model.ParameterCount;
        var records = train.Count;
        var q = DpSgdOptions.SamplingRate(dp.ExpectedBatchSize, records);
        var expectedBatch = q * records;
        var stepsPerEpoch = DpSgdOptions.StepsPerEpoch(dp.ExpectedBatchSize, records);
        var random = dp.Randomness ?? new DpNoise.Cryptographic();
        var early = validation is { Count: > 0 } && o.Patience > 0;

        var (p, reference, grad, m1, m2) = OptimizerState(initialParameters, proximalReference);
        var decayMask = DecayMask();
        var perExample = new PerExampleGradients(_model, FrozenRanges());
        var frozen = FrozenRanges();
        var epochs = new EpochLog(_model, early ? validation : null, o.Patience, p);
        long samples = 0;
        var step = 0;
        var noiseStd = dp.NoiseMultiplier * dp.ClipNorm;
        var invBatch = (float)(1 / expectedBatch);

        for (var epoch = 1; epoch <= o.Epochs; epoch++)
        {
            double lossSum = 0;
            var seen = 0;
            for (var s = 0; s < stepsPerEpoch; s++)
            {
                grad.AsSpan().Clear();
                for (var i = 0; i < records; i++)
                {
                    if (random.NextDouble() >= q) continue;
                    var (loss, _) = perExample.AccumulateClipped(p, train, i, dp.ClipNorm, grad);
                    lossSum += loss;
                    seen++;
                    samples++;
                }
                // An empty draw still takes a (pure-noise) step: skipping it would reveal the draw was empty.
                DpNoise.AddGaussian(grad, noiseStd, random);
                foreach (var (offset, length) in frozen) grad.AsSpan(offset, length).Clear();
                TensorPrimitives.Multiply(grad, invBatch, grad);
                if (reference is not null) AddProximal(p, reference, grad, (float)o.ProximalMu);
                step++;
                Update(p, grad, m1, m2, decayMask, step);
                if (o.MaxSteps > 0 && step >= o.MaxSteps) break;
            }
            foreach (var w in p)
                if (!float.IsFinite(w)) throw new InvalidOperationException($"training diverged at epoch {epoch}; lower the learning rate");

            if (epochs.EndEpoch(epoch, lossSum / Math.Max(1, seen))) break;
            if (o.MaxSteps > 0 && step >= o.MaxSteps) break;
        }
        return new TrainingResult(epochs.Result, epochs.History, epochs.BestEpoch, samples, step);
    }

    /// <summary>grad += mu (w - w_ref); returns (mu/2)·||w - w_ref||² (summed in index order, in double).</summary>
    private static double AddProximal(float[] p, float[] reference, float[] grad, float mu)
    {
        double sq = 0;
        for (var i = 0; i < p.Length; i++)
        {
            var d = p[i] - reference[i];
            grad[i] += mu * d;
            sq += (double)d * d;
        }
        return 0.5 * mu * sq;
    }

    private static void Clip(float[] grad, double maxNorm)
    {
        if (maxNorm <= 0) return;
        double sq = 0;
        foreach (var g in grad) sq += (double)g * g;
        var norm = Math.Sqrt(sq);
        if (norm > maxNorm) TensorPrimitives.Multiply(grad, (float)(maxNorm / norm), grad);
    }

    private void Update(float[] p, float[] grad, float[] m1, float[] m2, bool[] decay, int step)
    {
        var o = _options;
        var lr = (float)o.LearningRate;
        var wd = (float)o.WeightDecay;
        if (o.Optimizer == OptimizerKind.Sgd)
        {
            var mu = (float)o.Momentum;
            for (var i = 0; i < p.Length; i++)
            {
                var g = grad[i] + (decay[i] ? wd * p[i] : 0f);
                m1[i] = mu * m1[i] + g;
                p[i] -= lr * m1[i];
            }
            return;
        }
        var b1 = (float)o.Beta1;
        var b2 = (float)o.Beta2;
        var eps = (float)o.Epsilon;
        var c1 = (float)(1 - Math.Pow(o.Beta1, step));
        var c2 = (float)(1 - Math.Pow(o.Beta2, step));
        for (var i = 0; i < p.Length; i++)
        {
            var g = grad[i];
            m1[i] = b1 * m1[i] + (1 - b1) * g;
            m2[i] = b2 * m2[i] + (1 - b2) * g * g;
            var update = m1[i] / c1 / (MathF.Sqrt(m2[i] / c2) + eps);
            if (decay[i]) update += wd * p[i];
            p[i] -= lr * update;
        }
    }

    private bool[] DecayMask()
    {
        var mask = new bool[_model.ParameterCount];
        foreach (var v in _model.Layout.Views)
            if (v.Shape.Count > 1) mask.AsSpan(v.Offset, v.Length).Fill(true);
        foreach (var (offset, length) in FrozenRanges()) mask.AsSpan(offset, length).Clear();
        return mask;
    }

    /// <summary>(offset, length) of each frozen tensor; an unknown name is an error, not a silent no-op.</summary>
    private List<(int Offset, int Length)> FrozenRanges()
    {
        var ranges = new List<(int, int)>();
        foreach (var name in _options.FrozenTensors)
        {
            if (!_model.Layout.Contains(name))
                throw new ArgumentException($"frozen tensor '{name}' is not in the model's layout", nameof(TrainerOptions.FrozenTensors));
            var v = _model.Layout[name];
            ranges.Add((v.Offset, v.Length));
        }
        return ranges;
    }

    /// <summary>
    /// The epoch history and early stopping on validation loss, shared by the plain and the DP-SGD loops: without a
    /// validation set every epoch counts as the best; with one, the best epoch's parameters are kept and training
    /// stops after <c>patience</c> epochs without improvement.
    /// </summary>
    private sealed class EpochLog(CnnLstm model, SequenceDataset? validation, int patience, float[] parameters)
    {
        private readonly float[]? _best = validation is null ? null : parameters.ToArray();
        private double _bestLoss = double.PositiveInfinity;
        private int _sinceBest;

        public List<EpochReport> History { get; } = [];
        public int BestEpoch { get; private set; }
        public float[] Result => _best ?? parameters;

        /// <summary>Records the epoch; true when early stopping ends training.</summary>
        public bool EndEpoch(int epoch, double meanTrainLoss)
        {
            double? validationLoss = validation is null ? null : model.Loss(parameters, validation);
            History.Add(new EpochReport(epoch, meanTrainLoss, validationLoss));
            if (validation is null)
            {
                BestEpoch = epoch;
                return false;
            }
            if (validationLoss!.Value < _bestLoss)
            {
                _bestLoss = validationLoss.Value;
                BestEpoch = epoch;
                parameters.CopyTo(_best!, 0);
                _sinceBest = 0;
                return false;
            }
            return ++_sinceBest >= patience;
        }
    }
}
