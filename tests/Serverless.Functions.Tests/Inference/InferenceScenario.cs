using System.Text.Json;
using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Training;
using Serverless.Privacy.Ckks;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// Built once for every inference test (expensive): a seeded cohort, the HE-friendly CNN-LSTM trained on
/// it (4-visit window) with test-only CKKS parameters (N = 4096, 12 levels: above the 128-bit bound, so
/// the host runs with <c>allowInsecureParametersForTests</c>; production uses N = 16384), the plaintext
/// CNN-LSTM (standard activations, 16 channels, 8-visit window) trained on the same patients, and the
/// held-out patients a partner scores.
/// </summary>
public sealed class InferenceScenario
{
    public const int Steps = 4;

    public InferenceScenario()
    {
        Cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 4, PatientsPerHospital = 600, Visits = 8, Seed = 7 });
        var he = CohortDatasets.Build(Cohort, steps: Steps, testFraction: 0.3, seed: 1);
        Parameters = HeModel.CreateParameters(4096, HeModel.LevelsRequired(Steps), allowInsecureForTests: true);
        Model = HeModel.Train(he.Preprocessor, he.PooledTrain(),
            new HeModelOptions { Steps = Steps, ConvChannels = 4, LstmHidden = 4, Epochs = 25, LearningRate = 0.003, Patience = 0, ValidationFraction = 0, Seed = 3 },
            parameters: Parameters, modelVersion: "scenario");
        Records = he.PooledTest();

        var plain = CohortDatasets.Build(Cohort, steps: 8, testFraction: 0.3, seed: 1);
        var config = new ModelConfig { Features = plain.Preprocessor.Features, Steps = 8 };
        var cnnLstm = new CnnLstm(config);
        var trained = new Trainer(cnnLstm, new TrainerOptions { Epochs = 25, LearningRate = 0.005, Seed = 3, Patience = 4, ValidationFraction = 0.15, GradientClipNorm = 5 })
            .Train(plain.PooledTrain(), cnnLstm.InitializeParameters(3));
        PlainCnnLstmAuroc = Metrics.Evaluate(cnnLstm, trained.Parameters, plain.PooledTest()).Auroc;
        PlainHeAuroc = Metrics.Auroc(Model.PredictPlain(Records), Records.Labels);
    }

    public GeneratedCohort Cohort { get; }

    public CkksParameters Parameters { get; }

    public HeModel Model { get; }

    /// <summary>The held-out patients (30 % of every hospital), preprocessed with the model's statistics.</summary>
    public SequenceDataset Records { get; }

    /// <summary>Test AUROC of the plaintext (non-HE) CNN-LSTM on the same held-out patients.</summary>
    public double PlainCnnLstmAuroc { get; }

    /// <summary>Test AUROC of the HE-friendly model evaluated in plaintext.</summary>
    public double PlainHeAuroc { get; }

    /// <summary>What an operator PUTs to publish the model (checkpoint + CKKS ring and levels).</summary>
    public byte[] Publication() => JsonSerializer.SerializeToUtf8Bytes(new
    {
        checkpoint = JsonDocument.Parse(Model.Checkpoint.ToJson()).RootElement,
        ckks = new { n = Parameters.N, levels = Parameters.MaxLevel },
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
