using System.Text.Json;
using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Training;
using Serverless.Privacy.Ckks;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// Built once for every inference test (expensive): a seeded training cohort, the HE-friendly CNN-LSTM
/// trained on it (4-visit window), the plaintext CNN-LSTM (standard activations, 16 channels, 8-visit
/// window) trained on the same patients, and a partner's own patients (another seed) to score.
/// <para>
/// Defaults keep the test fast: 600 partner records and test-only CKKS parameters (N = 4096, 12 levels:
/// above the 128-bit bound, so the host runs with <c>allowInsecureParametersForTests</c>). The full run
/// (docs/inference.md) sets <c>SERVERLESS_INFERENCE_RECORDS=10000</c> and <c>SERVERLESS_INFERENCE_RING=16384</c>
/// (the production parameters, 128-bit secure).
/// </para>
/// </summary>
public sealed class InferenceScenario
{
    public const int Steps = 4;

    public InferenceScenario()
    {
        RecordCount = int.TryParse(Environment.GetEnvironmentVariable("SERVERLESS_INFERENCE_RECORDS"), out var n) && n > 0 ? n : 600;
        Ring = int.TryParse(Environment.GetEnvironmentVariable("SERVERLESS_INFERENCE_RING"), out var ring) ? ring : 4096;

        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 4, PatientsPerHospital = 600, Visits = 8, Seed = 7 });
        var he = CohortDatasets.Build(cohort, steps: Steps, testFraction: 0.25, seed: 1);
        Parameters = HeModel.CreateParameters(Ring, HeModel.LevelsRequired(Steps), allowInsecureForTests: Ring < 16384);
        Model = HeModel.Train(he.Preprocessor, he.PooledTrain(),
            new HeModelOptions { Steps = Steps, ConvChannels = 4, LstmHidden = 4, Epochs = 25, LearningRate = 0.003, Patience = 0, ValidationFraction = 0, Seed = 3 },
            parameters: Parameters, modelVersion: "scenario");

        // The partner's patients: another seed, never seen in training.
        var partner = CohortGenerator.Generate(new CohortOptions { Hospitals = 4, PatientsPerHospital = Math.Max(50, RecordCount / 2), Visits = 8, Seed = 2026 });
        Patients = partner.Hospitals.SelectMany(h => h.Patients).Take(RecordCount).ToArray();
        if (Patients.Count < RecordCount) throw new InvalidOperationException($"the partner cohort has only {Patients.Count} patients");
        Records = Model.Checkpoint.Preprocessor.Transform(Patients);
        PlainHeAuroc = Metrics.Auroc(Model.PredictPlain(Records), Records.Labels);

        var plain = CohortDatasets.Build(cohort, steps: 8, testFraction: 0.25, seed: 1);
        var config = new ModelConfig { Features = plain.Preprocessor.Features, Steps = 8 };
        var cnnLstm = new CnnLstm(config);
        var trained = new Trainer(cnnLstm, new TrainerOptions { Epochs = 25, LearningRate = 0.005, Seed = 3, Patience = 5, ValidationFraction = 0.15, GradientClipNorm = 5 })
            .Train(plain.PooledTrain(), cnnLstm.InitializeParameters(3));
        PlainCnnLstmAuroc = Metrics.Evaluate(cnnLstm, trained.Parameters, plain.Preprocessor.Transform(Patients)).Auroc;
    }

    /// <summary>Partner records scored end to end (600 by default, 10,000 in the full run).</summary>
    public int RecordCount { get; }

    /// <summary>CKKS ring degree N (4096 by default, 16384 in the full run).</summary>
    public int Ring { get; }

    public CkksParameters Parameters { get; }

    public HeModel Model { get; }

    /// <summary>The partner's raw patients.</summary>
    public IReadOnlyList<PatientRecord> Patients { get; }

    /// <summary>The partner's patients preprocessed with the model's statistics (what gets encrypted).</summary>
    public SequenceDataset Records { get; }

    /// <summary>AUROC of the plaintext (non-HE) CNN-LSTM on the partner's patients.</summary>
    public double PlainCnnLstmAuroc { get; }

    /// <summary>AUROC of the HE-friendly model evaluated in plaintext on the partner's patients.</summary>
    public double PlainHeAuroc { get; }

    /// <summary>What an operator PUTs to publish the model (checkpoint, CKKS ring and levels, entitled tenants: every partner unless given).</summary>
    public byte[] Publication(params string[] tenants) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        checkpoint = JsonDocument.Parse(Model.Checkpoint.ToJson()).RootElement,
        ckks = new { n = Parameters.N, levels = Parameters.MaxLevel },
        tenants = tenants.Length == 0 ? ["*"] : tenants,
    });
}

/// <summary>
/// Every inference test runs in this collection, one test at a time and never beside another collection:
/// the no-secret-key test reads a process-wide counter, which another test's partner keygen would move.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class InferenceCollection : ICollectionFixture<InferenceScenario>
{
    public const string Name = "encrypted inference";
}
