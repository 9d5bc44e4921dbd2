using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Model.Tests.Training;

public sealed class TrainerTests
{
    /// <summary>The acceptance margin: the CNN-LSTM's test AUROC exceeds each baseline's by at least this much.</summary>
    private const double AurocMargin = 0.03;

    [Fact]
    public void Cnn_lstm_beats_last_visit_logistic_regression_and_cnn_only_on_auroc_by_the_stated_margin()
    {
        var models = SharedTraining.Models;
        var lstm = models[ArchitectureKind.CnnLstm].TestReport.Auroc;
        var logreg = models[ArchitectureKind.LastVisitLogistic].TestReport.Auroc;
        var cnn = models[ArchitectureKind.CnnOnly].TestReport.Auroc;
        Assert.True(lstm >= logreg + AurocMargin, $"CNN-LSTM AUROC {lstm:F4} vs logistic regression {logreg:F4}");
        Assert.True(lstm >= cnn + AurocMargin, $"CNN-LSTM AUROC {lstm:F4} vs CNN-only {cnn:F4}");
        // And it learned something real, not just the others failing.
        Assert.True(lstm > 0.65, $"CNN-LSTM AUROC {lstm:F4}");
    }

    [Fact]
    public void Training_lowers_the_loss_and_early_stopping_returns_the_best_validation_epoch()
    {
        var run = SharedTraining.Models[ArchitectureKind.CnnLstm].Run;
        Assert.True(run.Epochs[^1].TrainLoss < run.Epochs[0].TrainLoss);
        var best = run.Epochs.Where(e => e.ValidationLoss.HasValue).MinBy(e => e.ValidationLoss!.Value)!;
        Assert.Equal(best.Epoch, run.BestEpoch);
        Assert.True(run.Epochs.Count < SharedTraining.Options().Epochs || run.BestEpoch <= run.Epochs.Count);
    }

    private static (SequenceDataset Train, CnnLstm Model) Small()
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 80, Visits = 6, Seed = 3 });
        var data = CohortDatasets.Build(cohort, 6).PooledTrain();
        return (data, new CnnLstm(new ModelConfig { Features = data.Features, Steps = 6, ConvChannels = 6, LstmHidden = 6, HeadHidden = 4 }));
    }

    [Theory]
    [InlineData(OptimizerKind.Adam, 0.0)]
    [InlineData(OptimizerKind.Sgd, 0.0)]
    [InlineData(OptimizerKind.Adam, 0.1)]
    public void Training_is_bit_for_bit_reproducible_with_the_same_seed(OptimizerKind optimizer, double mu)
    {
        var (train, model) = Small();
        var options = new TrainerOptions { Optimizer = optimizer, Epochs = 3, Seed = 5, ValidationFraction = 0.2, WeightDecay = 1e-3, ProximalMu = mu, LearningRate = optimizer == OptimizerKind.Sgd ? 0.05 : 0.01 };
        var init = model.InitializeParameters(9);
        var a = new Trainer(model, options).Train(train, init).Parameters;
        var b = new Trainer(new CnnLstm(model.Config), options).Train(train, init).Parameters;
        Assert.Equal(BitConverter.ToString(Bytes(a)), BitConverter.ToString(Bytes(b)));
        var c = new Trainer(model, options with { Seed = 6 }).Train(train, init).Parameters;
        Assert.NotEqual(a, c);
    }

    private static byte[] Bytes(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    [Fact]
    public void Train_never_modifies_the_initial_parameters()
    {
        var (train, model) = Small();
        var init = model.InitializeParameters(1);
        var copy = init.ToArray();
        new Trainer(model, new TrainerOptions { Epochs = 1 }).Train(train, init);
        Assert.Equal(copy, init);
    }

    [Fact]
    public void A_large_proximal_term_keeps_the_local_model_near_the_reference()
    {
        var (train, model) = Small();
        var init = model.InitializeParameters(1);
        double Distance(float[] p) => Math.Sqrt(p.Zip(init, (x, y) => (double)(x - y) * (x - y)).Sum());
        var free = new Trainer(model, new TrainerOptions { Epochs = 3, Patience = 0 }).Train(train, init).Parameters;
        var prox = new Trainer(model, new TrainerOptions { Epochs = 3, Patience = 0, ProximalMu = 10 }).Train(train, init, proximalReference: init).Parameters;
        Assert.True(Distance(prox) < 0.5 * Distance(free), $"FedProx distance {Distance(prox):F4} vs plain {Distance(free):F4}");
    }

    [Fact]
    public void Max_steps_limits_local_work_and_clipping_bounds_the_update()
    {
        var (train, model) = Small();
        var init = model.InitializeParameters(1);
        var run = new Trainer(model, new TrainerOptions { Epochs = 10, MaxSteps = 3, Patience = 0, BatchSize = 16 }).Train(train, init);
        Assert.Equal(3, run.Steps);
        Assert.Equal(48, run.SamplesSeen);
        // SGD without momentum, clip norm 0.01, one step: the update norm is at most lr * clip.
        var sgd = new Trainer(model, new TrainerOptions { Optimizer = OptimizerKind.Sgd, Momentum = 0, LearningRate = 1, GradientClipNorm = 0.01, MaxSteps = 1, Patience = 0 })
            .Train(train, init).Parameters;
        var norm = Math.Sqrt(sgd.Zip(init, (x, y) => (double)(x - y) * (x - y)).Sum());
        Assert.InRange(norm, 1e-4, 0.01 + 1e-6);
    }

    [Fact]
    public void Invalid_options_and_mismatched_inputs_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { LearningRate = 0 }.Validated());
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { BatchSize = 0 }.Validated());
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { ProximalMu = -1 }.Validated());
        var (train, model) = Small();
        var trainer = new Trainer(model, new TrainerOptions { Epochs = 1 });
        Assert.Throws<ArgumentException>(() => trainer.Train(train, new float[model.ParameterCount - 1]));
        Assert.Throws<ArgumentException>(() => trainer.Train(train, model.InitializeParameters(1), proximalReference: new float[3]));
        var other = new CnnLstm(model.Config with { Features = model.Config.Features + 1 });
        Assert.Throws<ArgumentException>(() => new Trainer(other, new TrainerOptions()).Train(train, other.InitializeParameters(1)));
    }
}
