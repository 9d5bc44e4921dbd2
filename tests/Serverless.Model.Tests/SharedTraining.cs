using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Model.Tests;

/// <summary>
/// One generated cohort and the three architectures trained on it with fixed seeds, built once and
/// shared by every test that needs a trained model (training is the expensive part of this project).
/// </summary>
internal static class SharedTraining
{
    public static readonly CohortOptions Cohort = new() { Hospitals = 4, PatientsPerHospital = 600, Visits = 8, Seed = 7 };
    public const int Steps = 8;

    public static TrainerOptions Options(int seed = 1) => new()
    {
        Epochs = 25, BatchSize = 32, LearningRate = 0.005, Seed = seed, ValidationFraction = 0.15, Patience = 5,
    };

    private static readonly Lazy<FederatedDatasets> LazyData = new(() => CohortDatasets.Build(CohortGenerator.Generate(Cohort), Steps));
    private static readonly Lazy<IReadOnlyDictionary<ArchitectureKind, Trained>> LazyModels = new(TrainAll);

    public static FederatedDatasets Data => LazyData.Value;
    public static SequenceDataset Train => Data.PooledTrain();
    public static SequenceDataset Test => Data.PooledTest();
    public static IReadOnlyDictionary<ArchitectureKind, Trained> Models => LazyModels.Value;

    public static ModelConfig Config(ArchitectureKind arch) => new()
    {
        Features = Data.Preprocessor.Features, Steps = Steps, Architecture = arch, ConvChannels = 16, LstmHidden = 16,
    };

    private static IReadOnlyDictionary<ArchitectureKind, Trained> TrainAll()
    {
        var train = Train;
        var test = Test;
        var result = new Dictionary<ArchitectureKind, Trained>();
        foreach (var arch in Enum.GetValues<ArchitectureKind>())
        {
            var model = new CnnLstm(Config(arch));
            var run = new Trainer(model, Options()).Train(train, model.InitializeParameters(1));
            result[arch] = new Trained(model, run, Metrics.Evaluate(model, run.Parameters, test));
        }
        return result;
    }

    public sealed record Trained(CnnLstm Model, TrainingResult Run, EvaluationReport TestReport);
}
