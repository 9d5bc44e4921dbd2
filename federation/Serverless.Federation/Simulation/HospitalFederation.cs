using Serverless.Model.Evaluation;

namespace Serverless.Federation.Simulation;

/// <summary>Settings of a simulated hospital federation over the model's generated non-IID cohorts.</summary>
public sealed record HospitalFederationOptions
{
    /// <summary>Hospitals (clients).</summary>
    public int Hospitals { get; init; } = 4;

    /// <summary>Patients per hospital before the size factor.</summary>
    public int PatientsPerHospital { get; init; } = 300;

    /// <summary>Visits per patient (sequence length).</summary>
    public int Visits { get; init; } = 8;

    /// <summary>Non-IID strength (0 = IID).</summary>
    public double Heterogeneity { get; init; } = 1.0;

    /// <summary>Cohort seed.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Model architecture.</summary>
    public ArchitectureKind Architecture { get; init; } = ArchitectureKind.CnnLstm;

    /// <summary>Conv channels and LSTM hidden size (small keeps tests fast).</summary>
    public int Width { get; init; } = 8;

    /// <summary>Mini-batch size of local training.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Share of each hospital's patients kept as its test set (never trained on).</summary>
    public double TestFraction { get; init; } = 0.25;

    /// <summary>
    /// Share of each hospital's training part kept for validation (model selection). 0 = none: the hospital trains on
    /// its whole training part, and its local evaluation uses its test set (a run that selects no model, such as
    /// DP-SGD, which may not look at its records outside the accounted steps, wastes nothing).
    /// </summary>
    public double ValidationFraction { get; init; } = 0.2;
}

/// <summary>
/// A ready-made federation: the model helper's seeded non-IID cohorts split into per-hospital
/// train/test sets, the model configuration, a pooled test set for hold-out scoring, and factories
/// for honest or attacking clients and for the centrally trained baseline on the same data.
/// </summary>
public sealed class HospitalFederation
{
    /// <summary>The per-hospital datasets.</summary>
    public FederatedDatasets Data { get; }

    /// <summary>Shared model configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>Base optimiser settings.</summary>
    public TrainerOptions TrainerOptions { get; }

    /// <summary>The options used.</summary>
    public HospitalFederationOptions Options { get; }

    private readonly SequenceDataset _pooledTest;
    private readonly (SequenceDataset Train, SequenceDataset Validation)[] _splits;

    /// <summary>Generates the cohorts.</summary>
    public HospitalFederation(HospitalFederationOptions? options = null)
    {
        Options = options ?? new HospitalFederationOptions();
        var cohort = CohortGenerator.Generate(new CohortOptions
        {
            Hospitals = Options.Hospitals, PatientsPerHospital = Options.PatientsPerHospital, Visits = Options.Visits,
            Seed = Options.Seed, Heterogeneity = Options.Heterogeneity,
        });
        Data = CohortDatasets.Build(cohort, steps: Options.Visits, testFraction: Options.TestFraction, seed: Options.Seed);
        var first = Data.Hospitals[0].Train;
        Config = new ModelConfig
        {
            Features = first.Features, Steps = first.Steps, Architecture = Options.Architecture,
            ConvChannels = Options.Width, LstmHidden = Options.Width,
        };
        TrainerOptions = new TrainerOptions { Optimizer = OptimizerKind.Adam, BatchSize = Options.BatchSize, Patience = 0, GradientClipNorm = 5 };
        _pooledTest = Data.PooledTest();
        // Each hospital keeps part of its training data for validation (model selection); the test sets are only for reporting.
        if (!(Options.ValidationFraction >= 0 && Options.ValidationFraction < 1)) throw new ArgumentOutOfRangeException(nameof(options), Options.ValidationFraction, "validation fraction must be in [0, 1)");
        _splits = Options.ValidationFraction == 0
            ? Data.Hospitals.Select(h => (h.Train, h.Test)).ToArray()
            : Data.Hospitals.Select((h, i) => h.Train.Split(Options.ValidationFraction, Options.Seed + i)).Select(s => (s.Second, s.First)).ToArray();
    }

    /// <summary>Hospital <paramref name="index"/>'s training part (all of its training data but the validation share).</summary>
    public SequenceDataset LocalTrain(int index) => _splits[index].Train;

    /// <summary>Hospital <paramref name="index"/>'s validation part (its test set when <see cref="HospitalFederationOptions.ValidationFraction"/> is 0).</summary>
    public SequenceDataset LocalValidation(int index) => _splits[index].Validation;

    /// <summary>Each hospital's number of local training records (what patient-level DP accounts per hospital).</summary>
    public IReadOnlyDictionary<string, int> TrainingRecords() =>
        Data.Hospitals.Select((h, i) => (h.Hospital, LocalTrain(i).Count)).ToDictionary(x => x.Hospital, x => x.Count, StringComparer.Ordinal);

    /// <summary>Number of parameters of the model.</summary>
    public int ParameterCount => new CnnLstm(Config).ParameterCount;

    /// <summary>Initial parameters.</summary>
    public float[] InitialParameters(int seed = 1) => new CnnLstm(Config).InitializeParameters(seed);

    /// <summary>Honest clients, one per hospital, or attackers where <paramref name="attackers"/> says so.</summary>
    public IReadOnlyList<IFederatedClient> Clients(IReadOnlyDictionary<int, (AttackKind Kind, double Factor)>? attackers = null) =>
        Data.Hospitals.Select((h, i) =>
        {
            if (attackers is null || !attackers.TryGetValue(i, out var a) || a.Kind == AttackKind.None)
                return (IFederatedClient)new ModelClient(h.Hospital, LocalTrain(i), LocalValidation(i), Config, TrainerOptions);
            var inner = new ModelClient(h.Hospital, LocalTrain(i), LocalValidation(i), Config, TrainerOptions, flipLabels: a.Kind == AttackKind.LabelFlip);
            return new AttackingClient(inner, a.Kind, a.Factor, 1000 + i);
        }).ToArray();

    /// <summary>AUROC on the pooled hold-out sets of all hospitals.</summary>
    public double PooledAuroc(float[] parameters) => Metrics.Evaluate(new CnnLstm(Config), parameters, _pooledTest).Auroc;

    /// <summary>
    /// The central baseline: the same model trained on the pooled training parts of all hospitals,
    /// keeping the epoch with the best loss on the pooled validation parts (early stopping) — the
    /// same model-selection rule the federated run gets.
    /// </summary>
    public float[] TrainCentral(int maxEpochs, double learningRate, int patience = 5, int seed = 1)
    {
        if (Options.ValidationFraction == 0) throw new InvalidOperationException("the central baseline selects its epoch on a validation split; this federation has none (ValidationFraction 0)");
        var model = new CnnLstm(Config);
        var trainer = new Trainer(model, TrainerOptions with { Epochs = maxEpochs, LearningRate = learningRate, Seed = seed, Patience = patience });
        var train = SequenceDataset.Concat(_splits.Select(s => s.Train).ToArray());
        var validation = SequenceDataset.Concat(_splits.Select(s => s.Validation).ToArray());
        return trainer.Train(train, InitialParameters(seed), validation).Parameters;
    }
}
