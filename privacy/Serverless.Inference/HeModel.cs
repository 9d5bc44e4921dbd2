using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;

namespace Serverless.Inference;

/// <summary>
/// Shape and training recipe of the HE-friendly CNN-LSTM. The architecture family is the product's
/// CNN-LSTM (<see cref="ArchitectureKind.CnnLstm"/>, the same 8-visit window) with the degree-3 polynomial
/// sigmoid of <see cref="ModelConfig.WithPolynomialActivations"/> for the gates, linear (Identity)
/// convolution and cell activations by default (the gates' polynomials supply the non-linearity; each
/// Identity saves a level and ciphertext products), few channels, no hidden head layer,
/// and the LSTM's recurrent matrix fixed at zero: the gates read the current visit's convolution features
/// only and the cell state carries the sequence, so the encrypted depth grows with log2 of the window
/// instead of seven levels per visit (<see cref="HeModel.LevelsRequired(ModelConfig)"/>).
/// Training follows the stable recipe of docs/model.md (initial weights × 0.5, Adam, clip 1) at lr 0.001
/// with patience 15: polynomial models plateau for a few epochs before they improve.
/// </summary>
public sealed record HeModelOptions
{
    public int Steps { get; init; } = 8;
    public int ConvChannels { get; init; } = 4;
    public int KernelSize { get; init; } = 3;
    public int LstmHidden { get; init; } = 2;

    /// <summary>Identity (default), PolyRelu2 or Square.</summary>
    public ActivationKind ConvActivation { get; init; } = ActivationKind.Identity;

    /// <summary>
    /// Identity (default) or PolyTanh3. The tanh costs a level and two ciphertext products per unit and visit
    /// (a third of the products of a group) for about 0.9 AUROC points on the generated cohort (docs/inference.md).
    /// </summary>
    public ActivationKind CellActivation { get; init; } = ActivationKind.Identity;

    public int Epochs { get; init; } = 100;
    public double LearningRate { get; init; } = 0.001;
    public double GradientClipNorm { get; init; } = 1.0;
    public double InitialWeightScale { get; init; } = 0.5;
    public int BatchSize { get; init; } = 32;
    public int Patience { get; init; } = 15;
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

    /// <summary>
    /// Levels the encrypted circuit consumes for a window of <paramref name="steps"/> visits with the
    /// default activations (Identity convolution and cell): 6 + ⌈log2 steps⌉ for powers of two (9 for
    /// 8 visits), because the cell recurrence is evaluated as a balanced tree of depth about log2 steps
    /// instead of a chain of steps multiplications. See <see cref="HeCircuit"/>.
    /// </summary>
    public static int LevelsRequired(int steps) => LevelsRequired(steps, quadraticConvolution: false, cellTanh: false);

    /// <summary>Levels for a checkpoint's config (a degree-2 convolution activation adds one, an Identity cell activation saves one).</summary>
    public static int LevelsRequired(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return LevelsRequired(config.Steps, config.ConvActivation != ActivationKind.Identity, config.CellActivation != ActivationKind.Identity);
    }

    internal static int LevelsRequired(int steps, bool quadraticConvolution, bool cellTanh)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        var a = quadraticConvolution ? 2 : 1;
        var cell = HeCircuit.CellTreeDepth(0, steps, xDepth: a + 4, fDepth: a + 3).Value;
        return cell + (cellTanh ? 2 : 1);
    }

    internal static int CeilLog2(int v) => v <= 1 ? 0 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(v - 1));

    /// <summary>
    /// The default parameters for the default <see cref="HeModelOptions"/>: <see cref="ParametersFor"/> of
    /// <see cref="HeFriendlyConfig"/> (N = 16384, 9 levels of 38-bit primes, q_0 = P = 48 bits).
    /// </summary>
    public static CkksParameters DefaultParameters() => ParametersFor(HeFriendlyConfig(15));

    /// <summary>
    /// The chain deep enough for <paramref name="config"/>, what <see cref="Create"/> uses when no parameters are
    /// given: <see cref="CreateParameters"/>(16384, <see cref="LevelsRequired(ModelConfig)"/>) with automatic prime
    /// sizes. 8,192 records per ciphertext group.
    /// </summary>
    public static CkksParameters ParametersFor(ModelConfig config) => CreateParameters(16384, LevelsRequired(config));

    /// <summary>
    /// A chain [q_0, b × levels] with special prime P, and the scale Δ that keeps every level's standard scale near
    /// 2^b. Prime sizes of 0 mean automatic: b as large as the bound for 128-bit classical security with a ternary
    /// secret allows (Homomorphic Encryption Security Standard, Albrecht et al., HomomorphicEncryption.org, November
    /// 2018, Table 1: log2(QP) ≤ 438 at N = 16384), b = min(40, floor((bound − 20) / (levels + 2))), and q_0 = P =
    /// b + 10 bits (room for the logits above the final scale; P at least every q_i for key-switching noise); with
    /// <paramref name="allowInsecureForTests"/> and a bound too small for b ≥ 30 (test rings), b = 34.
    /// The scale: with s_(l−1) = s_l² / q_l (multiply, then rescale by q_l), any Δ other than the chain's own
    /// fixed point drifts doubly exponentially over ten levels; so Δ is computed upwards from s_0 = 2^b as
    /// s_l = sqrt(s_(l−1)·q_l), a weighted geometric mean of the primes.
    /// </summary>
    /// <exception cref="ArgumentException">Above the 128-bit bound (unless <paramref name="allowInsecureForTests"/>), or invalid sizes.</exception>
    public static CkksParameters CreateParameters(int n, int levels, int primeBits = 0, int firstPrimeBits = 0, int specialPrimeBits = 0, bool allowInsecureForTests = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(levels, 1);
        if (primeBits == 0)
        {
            primeBits = Math.Min(40, (CkksParameters.MaxModulusBits(n) - 20) / (levels + 2));
            if (primeBits < 30 && allowInsecureForTests && n < 16384) primeBits = 34;
            if (primeBits < 20)
                throw new ArgumentException($"{levels} levels do not fit N = {n} at 128-bit security; use a larger N or a shorter window", nameof(levels));
        }
        if (firstPrimeBits == 0) firstPrimeBits = Math.Min(60, primeBits + 10);
        if (specialPrimeBits == 0) specialPrimeBits = Math.Min(60, primeBits + 10);
        int[] bits = [firstPrimeBits, .. Enumerable.Repeat(primeBits, levels)];
        var probe = CkksParameters.Create(n, bits, specialPrimeBits, Math.Pow(2, primeBits), allowInsecureForTests);
        var s = Math.Pow(2, primeBits);
        for (var l = 1; l <= levels; l++) s = Math.Sqrt(s * probe.Primes[l]);
        return CkksParameters.Create(n, bits, specialPrimeBits, s, allowInsecureForTests);
    }

    /// <summary>Checks that every level's standard scale stays near Δ and that q_0 leaves room for logits up to 2^8.</summary>
    internal static void CheckScaleLadder(CkksParameters p)
    {
        var s = p.Scale;
        for (var l = p.MaxLevel; l >= 1; l--)
        {
            s = s * s / p.Primes[l];
            if (!(Math.Abs(Math.Log2(s / p.Scale)) < 1))
                throw new ArgumentException($"the scale ladder of {p} drifts to 2^{Math.Log2(s):0.#} at level {l - 1}; create the parameters with HeModel.CreateParameters", "parameters");
        }
        if (Math.Log2(p.Primes[0]) - Math.Log2(s) < 8)
            throw new ArgumentException($"q_0 ({Math.Log2(p.Primes[0]):0.#} bits) leaves less than 8 bits above the final scale 2^{Math.Log2(s):0.#} for the logits", "parameters");
    }

    /// <summary>The HE-friendly config for <paramref name="features"/> inputs per visit.</summary>
    public static ModelConfig HeFriendlyConfig(int features, HeModelOptions? options = null)
    {
        options ??= new HeModelOptions();
        return (new ModelConfig
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
        }.WithPolynomialActivations() with { ConvActivation = options.ConvActivation, CellActivation = options.CellActivation }).Validated();
    }

    /// <summary>
    /// Wraps a checkpoint of the HE-friendly shape and computes its plan.
    /// </summary>
    /// <param name="checkpoint">A binary CNN-LSTM with an Identity, PolyRelu2 or Square convolution activation,
    /// PolySigmoid3 gates, a PolyTanh3 or Identity cell activation, no hidden head layer and an all-zero <c>lstm.R</c>.</param>
    /// <param name="parameters">CKKS parameters (default <see cref="ParametersFor"/>); must have at least <see cref="LevelsRequired(ModelConfig)"/> levels.</param>
    /// <param name="modelVersion">Label carried in the plan (model registry id).</param>
    /// <param name="maxRecords">Largest batch the plan accepts.</param>
    /// <exception cref="ArgumentException">The checkpoint is not HE-friendly, or the parameters are too shallow for it.</exception>
    public static HeModel Create(ModelCheckpoint checkpoint, CkksParameters? parameters = null, string modelVersion = "he-cnnlstm", int maxRecords = EvaluationPlan.DefaultMaxRecords)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelVersion);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        checkpoint.Validated();
        HeWeights.CheckFriendly(checkpoint);
        parameters ??= ParametersFor(checkpoint.Config);
        var c = checkpoint.Config;
        var needed = LevelsRequired(c);
        CheckScaleLadder(parameters);
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
