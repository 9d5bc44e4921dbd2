using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.Ckks;

namespace Serverless.Inference;

/// <summary>
/// Shape and training recipe of the HE-friendly CNN-LSTM. The architecture family is the product's
/// CNN-LSTM (<see cref="ArchitectureKind.CnnLstm"/>) with the polynomial activations of
/// <see cref="ModelConfig.WithPolynomialActivations"/>, a short window of <see cref="Steps"/> visits,
/// few channels, no hidden head layer, and the LSTM's recurrent matrix fixed at zero (gates read the
/// current visit's convolution features only, the cell state carries the sequence): then the depth
/// grows by one level per visit instead of seven, and <see cref="HeModel.LevelsRequired"/> = 8 + Steps.
/// Training defaults are the stable recipe of docs/model.md (initial weights × 0.5, Adam lr 0.0005, clip 1).
/// </summary>
public sealed record HeModelOptions
{
    public int Steps { get; init; } = 4;
    public int ConvChannels { get; init; } = 4;
    public int KernelSize { get; init; } = 3;
    public int LstmHidden { get; init; } = 4;
    public int Epochs { get; init; } = 40;
    public double LearningRate { get; init; } = 0.0005;
    public double GradientClipNorm { get; init; } = 1.0;
    public double InitialWeightScale { get; init; } = 0.5;
    public int BatchSize { get; init; } = 32;
    public int Patience { get; init; } = 5;
    public double ValidationFraction { get; init; } = 0.15;
    public int Seed { get; init; } = 1;
}

/// <summary>
/// A trained HE-friendly CNN-LSTM checkpoint together with its <see cref="EvaluationPlan"/>. Immutable
/// and thread-safe; build once per model version (the plan's CKKS context is built lazily and shared).
/// </summary>
public sealed class HeModel
{
    private HeModel(ModelCheckpoint checkpoint, EvaluationPlan plan)
    {
        Checkpoint = checkpoint;
        Plan = plan;
        Weights = HeWeights.From(checkpoint);
    }

    public ModelCheckpoint Checkpoint { get; }

    public EvaluationPlan Plan { get; }

    internal HeWeights Weights { get; }

    /// <summary>Levels the encrypted circuit consumes for a window of <paramref name="steps"/> visits: 8 + steps.</summary>
    public static int LevelsRequired(int steps) => 8 + steps;

    /// <summary>
    /// The default parameters: N = 16384, Q = [40, 29 × 12], P = 40 bits, Δ = 2^29: log2(QP) = 428, under
    /// the 438-bit bound for 128-bit classical security with a ternary secret at N = 16384 (Homomorphic
    /// Encryption Security Standard, Albrecht et al., HomomorphicEncryption.org, November 2018, Table 1).
    /// Twelve levels: enough for a 4-visit window. 8,192 records per ciphertext group.
    /// </summary>
    public static CkksParameters DefaultParameters() =>
        CkksParameters.Create(16384, [40, .. Enumerable.Repeat(29, 12)], 40, Math.Pow(2, 29));

    /// <summary>The HE-friendly config for <paramref name="features"/> inputs per visit.</summary>
    public static ModelConfig HeFriendlyConfig(int features, HeModelOptions? options = null)
    {
        options ??= new HeModelOptions();
        return new ModelConfig
        {
            Features = features,
            Steps = options.Steps,
            Architecture = ArchitectureKind.CnnLstm,
            ConvChannels = options.ConvChannels,
            KernelSize = options.KernelSize,
            LstmHidden = options.LstmHidden,
            HeadHidden = 0,
            Task = TaskKind.Binary,
            Classes = 2,
        }.WithPolynomialActivations().Validated();
    }

    /// <summary>
    /// Wraps a checkpoint of the HE-friendly shape and computes its plan.
    /// </summary>
    /// <param name="checkpoint">A binary CNN-LSTM with PolyRelu2 (or Square / Identity) convolution activation,
    /// PolySigmoid3 gates, PolyTanh3 cell activation, no hidden head layer and an all-zero <c>lstm.R</c>.</param>
    /// <param name="parameters">CKKS parameters (default <see cref="DefaultParameters"/>); must have at least <see cref="LevelsRequired"/> levels.</param>
    /// <param name="modelVersion">Label carried in the plan (model registry id).</param>
    /// <param name="maxRecords">Largest batch the plan accepts.</param>
    /// <exception cref="ArgumentException">The checkpoint is not HE-friendly, or the parameters are too shallow for it.</exception>
    public static HeModel Create(ModelCheckpoint checkpoint, CkksParameters? parameters = null, string modelVersion = "he-cnnlstm", int maxRecords = EvaluationPlan.DefaultMaxRecords)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelVersion);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        checkpoint.Validated();
        parameters ??= DefaultParameters();
        HeWeights.CheckFriendly(checkpoint);
        var c = checkpoint.Config;
        var needed = LevelsRequired(c.Steps);
        if (parameters.MaxLevel < needed)
            throw new ArgumentException(
                $"the HE circuit for a {c.Steps}-visit window needs {needed} levels, the parameters ({parameters}) have {parameters.MaxLevel}; " +
                "use a longer modulus chain or a shorter window", nameof(parameters));
        var plan = new EvaluationPlan(parameters, modelVersion, c.Features, c.Steps, needed, maxRecords);
        return new HeModel(checkpoint, plan);
    }

    /// <summary>
    /// Trains the HE-friendly variant on <paramref name="train"/> (built with <c>Steps = options.Steps</c>)
    /// with the stable recipe, the recurrent matrix frozen at zero, and wraps it with <see cref="Create"/>.
    /// Deterministic for the same inputs and seed.
    /// </summary>
    public static HeModel Train(Preprocessor preprocessor, SequenceDataset train, HeModelOptions? options = null, SequenceDataset? validation = null, CkksParameters? parameters = null, string modelVersion = "he-cnnlstm")
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(train);
        options ??= new HeModelOptions();
        if (train.Steps != options.Steps)
            throw new ArgumentException($"the training set has {train.Steps} steps, the HE model {options.Steps}; build it with steps: {options.Steps}", nameof(train));
        var config = HeFriendlyConfig(train.Features, options);
        var model = new CnnLstm(config);
        var p0 = model.InitializeParameters(options.Seed);
        for (var i = 0; i < p0.Length; i++) p0[i] *= (float)options.InitialWeightScale;
        model.Layout.Slice(p0.AsSpan(), "lstm.R").Clear();
        var trainer = new Trainer(model, new TrainerOptions
        {
            Optimizer = OptimizerKind.Adam,
            LearningRate = options.LearningRate,
            GradientClipNorm = options.GradientClipNorm,
            Epochs = options.Epochs,
            BatchSize = options.BatchSize,
            Seed = options.Seed,
            Patience = options.Patience,
            ValidationFraction = options.ValidationFraction,
            FrozenTensors = ["lstm.R"],
        });
        var result = trainer.Train(train, p0, validation);
        var checkpoint = new ModelCheckpoint(config, preprocessor with { Steps = options.Steps }, result.Parameters).Validated();
        return Create(checkpoint, parameters, modelVersion);
    }

    /// <summary>Plaintext probabilities of the same model (the reference the decrypted scores must match).</summary>
    public float[] PredictPlain(SequenceDataset records)
    {
        ArgumentNullException.ThrowIfNull(records);
        return new CnnLstm(Checkpoint.Config).Predict(Checkpoint.Parameters, records);
    }
}
