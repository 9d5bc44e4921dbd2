using Serverless.Federation.Privacy;
using Serverless.Federation.Simulation;

namespace Serverless.Federation.Attacks;

/// <summary>The federated training the experiment attacks, and the DP-SGD settings of its private variants.</summary>
public sealed record MembershipExperimentOptions
{
    /// <summary>Hospitals of each federation.</summary>
    public int Hospitals { get; init; } = 4;

    /// <summary>Patients generated per hospital; 40 % become its training records (half of them are its test set, a fifth of the rest validation).</summary>
    public int PatientsPerHospital { get; init; } = 100;

    /// <summary>Conv channels and LSTM width.</summary>
    public int Width { get; init; } = 16;

    public int Rounds { get; init; } = 10;
    public int LocalEpochs { get; init; } = 10;
    public double LearningRate { get; init; } = 0.01;

    /// <summary>Batch size of non-private local training.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>DP-SGD: per-record clip C.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>DP-SGD: expected Poisson batch L.</summary>
    public int ExpectedBatchSize { get; init; } = 16;

    /// <summary>DP-SGD local epochs per round (null = <see cref="LocalEpochs"/>): noisy steps want more of them.</summary>
    public int? DpLocalEpochs { get; init; }

    /// <summary>Local epochs of a run with or without DP.</summary>
    public int EpochsFor(bool dp) => dp ? DpLocalEpochs ?? LocalEpochs : LocalEpochs;

    /// <summary>DP-SGD learning rate (Adam); noisier steps want a different one than non-private training.</summary>
    public double DpLearningRate { get; init; } = 0.01;

    /// <summary>Delta of the per-patient guarantee.</summary>
    public double Delta { get; init; } = 1e-5;

    /// <summary>Share of each hospital's training part held out as validation (non-members); 0 = hospitals train on all of it.</summary>
    public double ValidationFraction { get; init; } = 0.2;

    /// <summary>Shadow federations per target (each trained on its own generated cohort).</summary>
    public int Shadows { get; init; } = 2;

    /// <summary>Cohort seed of the first trial (trial k uses seed + 1000 k; shadows seeds beyond).</summary>
    public int Seed { get; init; } = 1;
}

/// <summary>One attacked model: its utility and what both attacks got.</summary>
/// <param name="Epsilon">Per-patient epsilon of the run (null = no DP).</param>
/// <param name="NoiseMultiplier">sigma of DP-SGD (0 = no DP).</param>
/// <param name="TestAuroc">Pooled hold-out AUROC of the target.</param>
/// <param name="TrainAuroc">AUROC on its own training records (the gap to TestAuroc shows overfitting).</param>
/// <param name="Loss">Loss-threshold attack.</param>
/// <param name="ShadowModel">Shadow-model attack.</param>
/// <param name="Members">Members (and, as many, non-members) attacked.</param>
public sealed record MembershipTrial(double? Epsilon, double NoiseMultiplier, double TestAuroc, double TrainAuroc, AttackScore Loss, AttackScore ShadowModel, int Members)
{
    /// <summary>The stronger attack's held-out-threshold advantage.</summary>
    public double Advantage => Math.Max(Loss.Advantage, ShadowModel.Advantage);

    /// <summary>The stronger attack's AUC.</summary>
    public double Auc => Math.Max(Loss.Auc, ShadowModel.Auc);
}

/// <summary>
/// Measures membership leakage of the federated model: a target federation is trained (in process, by
/// <see cref="FederatedSimulator"/>) on one generated cohort; members are all its hospitals' training
/// records, non-members as many of the same generator's records it never saw (its hospitals' test
/// parts). Shadow federations trained the same way on other seeds of the generator teach the shadow
/// attack. With DP, every federation (target and shadows: the attacker knows the recipe) trains with
/// DP-SGD calibrated to the epsilon per patient over all its rounds.
/// </summary>
public sealed class MembershipInferenceExperiment(MembershipExperimentOptions options)
{
    /// <summary>One trial: the target of <paramref name="trial"/>, attacked, at <paramref name="epsilon"/> per patient (null = no DP).</summary>
    public MembershipTrial Run(int trial, double? epsilon)
    {
        var o = options;
        var target = Federation(o.Seed + 1000 * trial);
        var sigma = epsilon is { } e ? NoiseFor(target, e).Values.Max() : 0;
        var (model, parameters) = Train(target, epsilon, trial);
        var members = SequenceDataset.Concat(Enumerable.Range(0, o.Hospitals).Select(target.LocalTrain).ToArray());
        var nonMembers = Balanced(NonMembers(target), members.Count, trial);
        members = Balanced(members, nonMembers.Count, trial);

        var shadowIn = new List<(double, int)>();
        var shadowOut = new List<(double, int)>();
        for (var s = 0; s < o.Shadows; s++)
        {
            var shadow = Federation(o.Seed + 1000 * trial + 100 + s);
            var (shadowModel, shadowParameters) = Train(shadow, epsilon, trial * 31 + s + 1);
            var sIn = SequenceDataset.Concat(Enumerable.Range(0, o.Hospitals).Select(shadow.LocalTrain).ToArray());
            var sOut = Balanced(NonMembers(shadow), sIn.Count, s);
            sIn = Balanced(sIn, sOut.Count, s);
            shadowIn.AddRange(MembershipInference.Features(shadowModel, shadowParameters, sIn));
            shadowOut.AddRange(MembershipInference.Features(shadowModel, shadowParameters, sOut));
        }

        var loss = MembershipInference.LossThreshold(MembershipInference.Losses(model, parameters, members), MembershipInference.Losses(model, parameters, nonMembers), trial);
        var shadowScore = MembershipInference.Shadow(shadowIn, shadowOut,
            MembershipInference.Features(model, parameters, members), MembershipInference.Features(model, parameters, nonMembers));
        var testAuroc = target.PooledAuroc(parameters);
        var trainAuroc = Serverless.Model.Evaluation.Metrics.Evaluate(model, parameters, members).Auroc;
        return new MembershipTrial(epsilon, sigma, testAuroc, trainAuroc, loss, shadowScore, members.Count);
    }

    // Half of each hospital's patients are held out, so that there are as many non-members as members and more.
    private HospitalFederation Federation(int seed) => new(new HospitalFederationOptions
    {
        Hospitals = options.Hospitals, PatientsPerHospital = options.PatientsPerHospital, Width = options.Width, Seed = seed, BatchSize = options.BatchSize, TestFraction = 0.5,
        ValidationFraction = options.ValidationFraction,
    });

    /// <summary>Records of the same hospitals the federation never trained on: their test and validation parts.</summary>
    private SequenceDataset NonMembers(HospitalFederation fed) =>
        SequenceDataset.Concat([fed.Data.PooledTest(), .. Enumerable.Range(0, options.Hospitals).Select(fed.LocalValidation)]);

    /// <summary>Each hospital's sigma spending epsilon per patient over all rounds on its own records.</summary>
    public IReadOnlyDictionary<string, double> NoiseFor(HospitalFederation fed, double epsilon) =>
        PatientLevelDpStrategy.CalibrateNoisePerHospital(epsilon, options.Delta, options.ExpectedBatchSize, options.EpochsFor(dp: true), options.Rounds, fed.TrainingRecords());

    /// <summary>The federated model after all rounds (final parameters: no model selection, which would use more data); <paramref name="seed"/> seeds the initial parameters and the training.</summary>
    public (CnnLstm Model, float[] Parameters) Train(HospitalFederation fed, double? epsilon, int seed)
    {
        var o = options;
        IStrategy strategy = new FedAvg(new FedAvgOptions
        {
            LocalEpochs = o.EpochsFor(epsilon is not null), LearningRate = epsilon is null ? o.LearningRate : o.DpLearningRate, FractionEvaluate = 0, Seed = seed,
        });
        if (epsilon is { } eps)
        {
            var noise = NoiseFor(fed, eps);
            strategy = new PatientLevelDpStrategy(strategy, new PatientDpOptions(o.ClipNorm, noise.Values.Max(), o.ExpectedBatchSize, o.Delta, eps * (1 + 1e-6)), fed.TrainingRecords(), noise);
        }
        var result = new FederatedSimulator(strategy, fed.Clients(), new SimulationOptions { Rounds = o.Rounds, Seed = seed }).Run(fed.InitialParameters(seed));
        if (result.StoppedBecause is { } why) throw new InvalidOperationException("the experiment's federation stopped early: " + why);
        return (new CnnLstm(fed.Config), result.Parameters);
    }

    private static SequenceDataset Balanced(SequenceDataset d, int count, int seed)
    {
        if (d.Count <= count) return d;
        var order = Enumerable.Range(0, d.Count).ToArray();
        new Random(seed).Shuffle(order);
        return d.Subset(order.AsSpan(0, count));
    }
}
