using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Model.Tests.Training;

/// <summary>Known-answer tests of DP-SGD on tiny CNN-LSTMs over random sequences (variable lengths, so BPTT sees padding).</summary>
public sealed class DpSgdTests
{
    private static SequenceDataset RandomData(int count, int steps, int features, int seed)
    {
        var rng = new Random(seed);
        var values = new float[count * steps * features];
        var mask = new float[count * steps];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            var length = 1 + rng.Next(steps);
            for (var t = 0; t < length; t++) mask[i * steps + t] = 1;
            for (var k = 0; k < steps * features; k++) values[i * steps * features + k] = (float)(rng.NextDouble() * 4 - 2);
            labels[i] = rng.Next(2);
        }
        return new SequenceDataset(count, steps, features, 2, values, mask, labels);
    }

    private static CnnLstm Tiny(int width = 3) => new(new ModelConfig { Features = 3, Steps = 5, ConvChannels = width, LstmHidden = width, HeadHidden = 2 });

    [Fact]
    public void Property_every_examples_clipped_gradient_is_within_C_over_random_models_data_and_bounds()
    {
        // 40 seeded cases: random widths, weight scales (up to gradients far beyond C), record lengths and clip norms.
        for (var seed = 1; seed <= 40; seed++)
        {
            var rng = new Random(seed);
            var model = Tiny(width: 1 + rng.Next(4));
            var data = RandomData(6, 5, 3, seed: 1000 + seed);
            var p = model.InitializeParameters(seed);
            var scale = (float)Math.Exp(rng.NextDouble() * 4 - 1);   // e^-1 .. e^3
            for (var i = 0; i < p.Length; i++) p[i] *= scale;
            var c = Math.Exp(rng.NextDouble() * 8 - 6);                // e^-6 .. e^2
            var perExample = new PerExampleGradients(model);
            var sum = new float[model.ParameterCount];
            for (var i = 0; i < data.Count; i++)
            {
                var (_, norm) = perExample.AccumulateClipped(p, data, i, c, sum);
                var after = Norm(perExample.LastGradient);
                Assert.True(after <= c * (1 + 1e-5), $"seed {seed}, example {i}: clipped norm {after} > C = {c} (raw {norm})");
                Assert.Equal(Math.Min(norm, c), after, Math.Max(1e-6, 1e-4 * c));
            }
            Assert.True(Norm(sum) <= data.Count * c * (1 + 1e-5), $"seed {seed}: the sum exceeds records x C");
        }
    }

    [Fact]
    public void Each_examples_clipped_gradient_has_norm_at_most_C_and_unclipped_ones_sum_to_the_batch_gradient()
    {
        var model = Tiny();
        var data = RandomData(12, 5, 3, seed: 11);
        var p = model.InitializeParameters(5);
        // Large weights so that some gradients exceed C and some do not.
        for (var i = 0; i < p.Length; i++) p[i] *= 3;
        var perExample = new PerExampleGradients(model);
        const double C = 0.3;
        var sum = new float[model.ParameterCount];
        var clippedSome = false;
        var unclippedSome = false;
        for (var i = 0; i < data.Count; i++)
        {
            var (_, norm) = perExample.AccumulateClipped(p, data, i, C, sum);
            var after = Norm(perExample.LastGradient);
            Assert.True(after <= C * (1 + 1e-5), $"example {i}: clipped norm {after} > C = {C}");
            if (norm > C) { clippedSome = true; Assert.Equal(C, after, 4); }
            else { unclippedSome = true; Assert.Equal(norm, after, 6); }
        }
        Assert.True(clippedSome && unclippedSome, "the test data should exercise both sides of the clip");
        Assert.True(Norm(sum) <= data.Count * C * (1 + 1e-5));

        // With a clip no gradient reaches, the per-example gradients (each a batch of one through BPTT) sum to B times the batch gradient.
        var unclipped = new float[model.ParameterCount];
        var fresh = new PerExampleGradients(model);
        for (var i = 0; i < data.Count; i++) fresh.AccumulateClipped(p, data, i, 1e9, unclipped);
        var batch = new float[model.ParameterCount];
        var ws = model.Network.CreateWorkspace(data.Count);
        model.Network.LossAndGradient(p, data.Values, data.Mask, data.Labels, data.Count, ws, batch);
        for (var k = 0; k < batch.Length; k++)
            Assert.True(Math.Abs(unclipped[k] / data.Count - batch[k]) <= 1e-5 + 1e-4 * Math.Abs(batch[k]), $"coordinate {k}: {unclipped[k] / data.Count} vs {batch[k]}");
    }

    [Fact]
    public void The_noise_on_the_averaged_gradient_has_std_sigma_C_over_the_expected_batch()
    {
        // q = 1 (expected batch >= records): every record is in the one batch, so the clipped sum is known and,
        // with plain SGD at learning rate 1, p_before - p_after = (clipped sum + noise) / L exactly.
        var model = Tiny(width: 16);
        var data = RandomData(10, 5, 3, seed: 4);
        var p0 = model.InitializeParameters(2);
        const double C = 0.5, Sigma = 1.3;
        const int L = 10;
        var options = new TrainerOptions
        {
            Optimizer = OptimizerKind.Sgd, LearningRate = 1, Momentum = 0, WeightDecay = 0, Epochs = 1, Patience = 0,
            DpSgd = new DpSgdOptions { ClipNorm = C, NoiseMultiplier = Sigma, ExpectedBatchSize = L, Randomness = new Random(99) },
        };
        var run = new Trainer(model, options).Train(data, p0);
        Assert.Equal(1, run.Steps);
        var clipped = new float[model.ParameterCount];
        var perExample = new PerExampleGradients(model);
        for (var i = 0; i < data.Count; i++) perExample.AccumulateClipped(p0, data, i, C, clipped);

        var n = p0.Length;
        double mean = 0, sq = 0;
        for (var k = 0; k < n; k++)
        {
            var noise = (double)p0[k] - run.Parameters[k] - clipped[k] / L;
            mean += noise;
            sq += noise * noise;
        }
        mean /= n;
        var std = Math.Sqrt(sq / n - mean * mean);
        var expected = Sigma * C / L;
        // The sample std of n normals has relative standard error 1/sqrt(2n) (about 1.5 % here): allow 4 of them.
        var bound = 4 / Math.Sqrt(2.0 * n);
        Assert.True(Math.Abs(std / expected - 1) < bound, $"noise std {std:G4}, expected {expected:G4} (n = {n}, bound {bound:P1})");
        Assert.True(Math.Abs(mean) < 4 * expected / Math.Sqrt(n), $"noise mean {mean:G4}");
    }

    [Fact]
    public void The_steps_taken_equal_the_planned_Poisson_batches_and_the_drawn_sizes_average_the_expected_batch()
    {
        var model = Tiny();
        var data = RandomData(47, 5, 3, seed: 8);
        const int L = 6, Epochs = 4;
        var dp = new DpSgdOptions { ClipNorm = 1, NoiseMultiplier = 1, ExpectedBatchSize = L, Randomness = new Random(3) };
        var run = new Trainer(model, new TrainerOptions { Epochs = Epochs, Patience = 0, DpSgd = dp }).Train(data, model.InitializeParameters(1));
        var planned = DpSgdOptions.PlannedSteps(L, data.Count, Epochs);
        Assert.Equal(8 * Epochs, planned); // ceil(47 / 6) = 8 batches an epoch
        Assert.Equal(planned, run.Steps);
        // Poisson sampling: the number of records drawn is Binomial(records * steps, q); its mean is L per step.
        var q = DpSgdOptions.SamplingRate(L, data.Count);
        var trials = (double)data.Count * run.Steps;
        var sd = Math.Sqrt(trials * q * (1 - q));
        Assert.True(Math.Abs(run.SamplesSeen - trials * q) < 4 * sd, $"drew {run.SamplesSeen} records over {run.Steps} steps, expected {trials * q:F0}");

        var capped = new Trainer(model, new TrainerOptions { Epochs = Epochs, Patience = 0, MaxSteps = 5, DpSgd = dp with { Randomness = new Random(3) } })
            .Train(data, model.InitializeParameters(1));
        Assert.Equal(DpSgdOptions.PlannedSteps(L, data.Count, Epochs, maxSteps: 5), capped.Steps);
        Assert.Equal(5, capped.Steps);
    }

    [Fact]
    public void Dp_sgd_is_reproducible_for_a_seeded_source_and_differs_from_ordinary_training()
    {
        var model = Tiny();
        var data = RandomData(30, 5, 3, seed: 9);
        TrainerOptions Options(int seed) => new()
        {
            Epochs = 2, Patience = 0,
            DpSgd = new DpSgdOptions { ClipNorm = 1, NoiseMultiplier = 0.8, ExpectedBatchSize = 8, Randomness = new Random(seed) },
        };
        var a = new Trainer(model, Options(1)).Train(data, model.InitializeParameters(1)).Parameters;
        var b = new Trainer(model, Options(1)).Train(data, model.InitializeParameters(1)).Parameters;
        var c = new Trainer(model, Options(2)).Train(data, model.InitializeParameters(1)).Parameters;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Theory]
    [InlineData(0, 1, 8)]
    [InlineData(1, -1, 8)]
    [InlineData(1, 1, 0)]
    [InlineData(double.NaN, 1, 8)]
    public void Out_of_range_dp_sgd_options_are_refused(double clip, double sigma, int batch)
    {
        var options = new TrainerOptions { DpSgd = new DpSgdOptions { ClipNorm = clip, NoiseMultiplier = sigma, ExpectedBatchSize = batch } };
        Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(Tiny(), options));
    }

    private static double Norm(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (var x in v) s += (double)x * x;
        return Math.Sqrt(s);
    }
}
