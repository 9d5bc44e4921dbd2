using Serverless.Federation.Compression;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Client.Agent;

/// <summary>What the server asks a client to do with the global model in one round.</summary>
/// <param name="Round">1-based round number.</param>
/// <param name="LocalEpochs">Epochs of local training.</param>
/// <param name="LearningRate">Local step size (Adam).</param>
/// <param name="ProximalMu">FedProx's mu (0 = FedAvg).</param>
/// <param name="BatchSize">Mini-batch size.</param>
/// <param name="Seed">Seed of batch order (training is reproducible for a seed).</param>
/// <param name="ClipNorm">L2 bound S of the update (0 = no clipping).</param>
/// <param name="NoiseStd">Std of this client's Gaussian noise share (distributed DP; 0 = none).</param>
internal sealed record LocalTrainingPlan(int Round, int LocalEpochs, double LearningRate, double ProximalMu, int BatchSize, int Seed, double ClipNorm, double NoiseStd)
{
    /// <summary>Checks ranges (the values come from the server).</summary>
    /// <exception cref="InvalidDataException">a value out of range.</exception>
    public LocalTrainingPlan Validated()
    {
        if (Round < 1) throw new InvalidDataException($"round {Round} is not positive");
        if (LocalEpochs is < 1 or > 1000) throw new InvalidDataException($"local epochs {LocalEpochs} outside 1..1000");
        if (!(LearningRate > 0 && LearningRate < 10)) throw new InvalidDataException($"learning rate {LearningRate} outside (0, 10)");
        if (!(ProximalMu >= 0 && ProximalMu < 1000)) throw new InvalidDataException($"proximal mu {ProximalMu} outside [0, 1000)");
        if (BatchSize is < 1 or > 65536) throw new InvalidDataException($"batch size {BatchSize} outside 1..65536");
        if (!(ClipNorm >= 0 && double.IsFinite(ClipNorm))) throw new InvalidDataException($"clip norm {ClipNorm} is not a finite non-negative number");
        if (!(NoiseStd >= 0 && double.IsFinite(NoiseStd))) throw new InvalidDataException($"noise std {NoiseStd} is not a finite non-negative number");
        return this;
    }
}

/// <summary>How a (deliberately) malicious agent corrupts its update, for the acceptance test and the simulation.</summary>
internal enum AttackMode
{
    /// <summary>Honest.</summary>
    None,

    /// <summary>Multiplies its update by the factor after the honest pipeline (model replacement, Bagdasaryan et al. 2020).</summary>
    Scale,

    /// <summary>Sends -factor times its update.</summary>
    SignFlip,
}

/// <summary>An attack and its factor; parsed from "scale:10" or "flip:4" (factor defaults to 10).</summary>
internal sealed record Attack(AttackMode Mode, double Factor)
{
    public static Attack None { get; } = new(AttackMode.None, 1);

    /// <summary>Rounds in which the attacker corrupts its update (null = every round); honest otherwise.</summary>
    public IReadOnlySet<int>? Rounds { get; init; }

    public bool IsAttacking => Mode != AttackMode.None;

    /// <summary>Whether the update of <paramref name="round"/> is corrupted.</summary>
    public bool AttacksIn(int round) => IsAttacking && (Rounds is null || Rounds.Contains(round));

    /// <summary>Parses a comma-separated list of positive round numbers ("2,3"); empty = every round.</summary>
    /// <exception cref="ArgumentException">a value is not a positive integer.</exception>
    public Attack InRounds(string? rounds)
    {
        if (string.IsNullOrWhiteSpace(rounds)) return this;
        var set = new HashSet<int>();
        foreach (var part in rounds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            set.Add(int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var r) && r > 0 ? r : throw new ArgumentException($"attack round '{part}' is not a positive integer"));
        return this with { Rounds = set };
    }

    /// <exception cref="ArgumentException">not "none", "scale[:f]" or "flip[:f]" with a finite positive f.</exception>
    public static Attack Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text == "none") return None;
        var parts = text.Split(':', 2);
        var mode = parts[0] switch
        {
            "scale" => AttackMode.Scale,
            "flip" => AttackMode.SignFlip,
            _ => throw new ArgumentException($"unknown attack '{parts[0]}' (none, scale[:factor], flip[:factor])"),
        };
        var factor = 10.0;
        if (parts.Length == 2 && !(double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out factor) && factor > 0 && double.IsFinite(factor)))
            throw new ArgumentException($"attack factor '{parts[1]}' is not a positive number");
        return new Attack(mode, factor);
    }

    public override string ToString() => Mode switch
    {
        AttackMode.Scale => string.Create(CultureInfo.InvariantCulture, $"scale:{Factor}"),
        AttackMode.SignFlip => string.Create(CultureInfo.InvariantCulture, $"flip:{Factor}"),
        _ => "none",
    };
}

/// <summary>A client's update for one round, before encoding.</summary>
/// <param name="Delta">Local minus global parameters, clipped and noised as the plan says (and corrupted if attacking).</param>
/// <param name="Examples">Training sequences used.</param>
/// <param name="NormBeforeClip">L2 norm of the honest delta before clipping.</param>
/// <param name="TrainLoss">Last epoch's training loss.</param>
/// <param name="TrainingTime">Wall time of local training.</param>
/// <param name="PatientEpsilon">Per-patient epsilon spent so far under patient-level DP (null in client-level mode).</param>
internal sealed record LocalUpdate(float[] Delta, int Examples, double NormBeforeClip, double TrainLoss, TimeSpan TrainingTime, double? PatientEpsilon = null);

/// <summary>
/// The agent's local work, with no I/O: statistics sums for federated standardization, and per round
/// train (FedProx) -> delta -> clip to S -> add this client's noise share -> encode (ring for secure
/// aggregation, or stochastic quantization for a visible update). The raw records never leave this
/// object; only sums and parameter deltas do.
/// </summary>
internal sealed class LocalUpdatePipeline
{
    private readonly PatientCohort _cohort;
    private readonly Attack _attack;
    private readonly PatientPrivacy? _patientPrivacy;
    private (string Key, SequenceDataset Data)? _prepared;

    /// <param name="cohort">The local records.</param>
    /// <param name="attack">Testing only: how to corrupt the update.</param>
    /// <param name="patientPrivacy">Patient-level DP (DP-SGD with this agent's per-patient account), or null for client-level DP only.</param>
    public LocalUpdatePipeline(PatientCohort cohort, Attack? attack = null, PatientPrivacy? patientPrivacy = null)
    {
        _cohort = cohort ?? throw new ArgumentNullException(nameof(cohort));
        if (cohort.Patients.Count == 0) throw new ArgumentException("The cohort has no patients.", nameof(cohort));
        _attack = attack ?? Attack.None;
        _patientPrivacy = patientPrivacy;
    }

    /// <summary>Patient-level DP in force (null = client-level only).</summary>
    public PatientPrivacy? PatientPrivacy => _patientPrivacy;

    public FeatureSchema Schema => _cohort.Schema;

    public int Patients => _cohort.Patients.Count;

    public Attack Attack => _attack;

    /// <summary>This client's [counts | sums | sums of squares] per numeric column, to be securely summed across the federation.</summary>
    public double[] StatisticsVector() => FeatureSums.Accumulate(_cohort.Schema, _cohort.Patients).ToVector();

    /// <summary>
    /// The private statistics-stage input (decision 0023): each patient's values clipped to the public ranges and counted
    /// once per column, plus this client's Gaussian noise share, sized from the stage's threshold by the client itself.
    /// </summary>
    public uint[] PrivateStatisticsInput(StatisticsMechanism mechanism, int threshold, int fractionBits, Random noise)
    {
        ArgumentNullException.ThrowIfNull(mechanism);
        return mechanism.Validated().ClientInput(_cohort.Schema, _cohort.Patients, threshold, fractionBits, noise);
    }

    /// <summary>The local records preprocessed with the federation's statistics (cached per preprocessor).</summary>
    public SequenceDataset Prepare(Preprocessor preprocessor)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        var key = preprocessor.ToJson();
        if (_prepared is { } p && p.Key == key) return p.Data;
        if (preprocessor.Schema.VisitFeatures.Count != _cohort.Schema.VisitFeatures.Count || preprocessor.Schema.StaticFeatures.Count != _cohort.Schema.StaticFeatures.Count)
            throw new InvalidDataException("the federation's preprocessing schema does not match the local data's");
        var data = preprocessor.Validated().Transform(_cohort.Patients);
        _prepared = (key, data);
        return data;
    }

    /// <summary>Trains from <paramref name="global"/> and returns the clipped, noised update.</summary>
    /// <param name="config">The federation's model configuration.</param>
    /// <param name="preprocessor">The federation's preprocessing (statistics from the secure sum).</param>
    /// <param name="global">Global parameters of this round.</param>
    /// <param name="plan">The round's instructions.</param>
    /// <param name="noise">Noise source: <see cref="CryptoRandom"/> in production (noise is a secret), seeded in tests.</param>
    /// <exception cref="InvalidDataException">the parameters do not fit the model, or a plan value is out of range.</exception>
    public LocalUpdate Train(ModelConfig config, Preprocessor preprocessor, float[] global, LocalTrainingPlan plan, Random noise)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(global);
        ArgumentNullException.ThrowIfNull(noise);
        plan = (plan ?? throw new ArgumentNullException(nameof(plan))).Validated();
        var model = new CnnLstm(config.Validated());
        if (global.Length != model.ParameterCount) throw new InvalidDataException($"the global model has {global.Length} parameters, the configuration needs {model.ParameterCount}");
        foreach (var w in global) if (!float.IsFinite(w)) throw new InvalidDataException("the global model holds NaN or infinite parameters");
        var data = Prepare(preprocessor);
        if (data.Features != config.Features || data.Steps != config.Steps)
            throw new InvalidDataException($"preprocessed data is [{data.Steps} x {data.Features}], the model expects [{config.Steps} x {config.Features}]");

        // Patient-level DP: the budget is checked before any record is touched; the steps taken are charged after.
        var dp = _patientPrivacy?.Plan(plan.Round, data.Count, plan.LocalEpochs, noise);
        var start = Stopwatch.GetTimestamp();
        var trainer = new Trainer(model, new TrainerOptions
        {
            Optimizer = OptimizerKind.Adam, LearningRate = plan.LearningRate, Epochs = plan.LocalEpochs, BatchSize = plan.BatchSize,
            Seed = plan.Seed, Patience = 0, ValidationFraction = 0, ProximalMu = plan.ProximalMu, GradientClipNorm = 5, DpSgd = dp?.Options,
        });
        var result = trainer.Train(data, global, null, plan.ProximalMu > 0 ? global : null);
        var trainingTime = Stopwatch.GetElapsedTime(start);
        double? patientEpsilon = dp is { } d ? _patientPrivacy!.Charge(d.Q, result.Steps) : null;
        var delta = DeltaEncoding.Delta(result.Parameters, global);
        var norm = GaussianMechanism.Norm(delta);
        if (plan.ClipNorm > 0) GaussianMechanism.ClipL2(delta, plan.ClipNorm);
        if (plan.NoiseStd > 0) GaussianMechanism.AddGaussianNoise(delta, plan.NoiseStd, noise);
        if (_attack.AttacksIn(plan.Round)) Corrupt(delta);
        var loss = result.Epochs.Count > 0 ? result.Epochs[^1].TrainLoss : double.NaN;
        return new LocalUpdate(delta, data.Count, norm, loss, trainingTime, patientEpsilon);
    }

    /// <summary>An attacker corrupts the update after the honest pipeline, as a malicious client would (it ignores the clip).</summary>
    private void Corrupt(Span<float> delta)
    {
        var f = (float)_attack.Factor;
        switch (_attack.Mode)
        {
            case AttackMode.Scale:
                for (var i = 0; i < delta.Length; i++) delta[i] *= f;
                break;
            case AttackMode.SignFlip:
                for (var i = 0; i < delta.Length; i++) delta[i] *= -f;
                break;
        }
    }

    /// <summary>
    /// The ring encoding secure aggregation sums: the update scaled by <paramref name="weight"/> (in [0, 1]),
    /// with the weight itself times the bound appended when <paramref name="appendWeight"/> (so the server can
    /// divide the sum by the summed weights), each entry clamped to ±bound and stochastically rounded.
    /// </summary>
    public static uint[] EncodeForSecureSum(ReadOnlySpan<float> update, double weight, bool appendWeight, RingCodec codec, Random rounding)
    {
        ArgumentNullException.ThrowIfNull(codec);
        if (!(weight >= 0 && weight <= 1)) throw new ArgumentOutOfRangeException(nameof(weight), "weight must be in [0, 1]");
        var scaled = new float[update.Length + (appendWeight ? 1 : 0)];
        var w = (float)weight;
        for (var i = 0; i < update.Length; i++) scaled[i] = update[i] * w;
        if (appendWeight) scaled[^1] = w * codec.ClipRange;
        var ring = new uint[scaled.Length];
        codec.EncodeStochastic(scaled, ring, rounding);
        return ring;
    }

    /// <summary>A visible update as a compressed frame: stochastic quantization to <paramref name="bits"/> bits (0 = float32).</summary>
    public static byte[] EncodeVisible(ReadOnlySpan<float> update, int bits, int chunkSize, Random rounding) =>
        bits == 0 ? UpdateFrame.EncodeDense(update) : UpdateFrame.EncodeQuantized(StochasticQuantizer.Quantize(update, bits, chunkSize, rounding));
}
