using Serverless.Inference;
using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Inference.Tests;

[Collection(InferenceCollection.Name)]
public sealed class HeModelTests(InferenceFixture fx)
{
    [Fact]
    public void Training_keeps_the_recurrent_matrix_at_zero_and_uses_polynomial_activations()
    {
        var c = fx.Model.Checkpoint;
        var layout = new CnnLstm(c.Config).Layout;
        Assert.All(layout.Slice(c.Parameters.AsSpan(), "lstm.R").ToArray(), r => Assert.Equal(0f, r));
        Assert.Contains(layout.Slice(c.Parameters.AsSpan(), "lstm.W").ToArray(), w => w != 0f);
        Assert.Equal(ActivationKind.PolySigmoid3, c.Config.GateActivation);
        Assert.Equal(ActivationKind.Identity, c.Config.CellActivation); // the default; PolyTanh3 is covered by the evaluator tests
        Assert.Equal(InferenceFixture.Steps, c.Config.Steps);
    }

    [Fact]
    public void Checkpoints_that_are_not_HE_friendly_are_refused()
    {
        var c = fx.Model.Checkpoint;
        var parameters = fx.Model.Plan.Parameters;
        var withR = c.Parameters.ToArray();
        new CnnLstm(c.Config).Layout.Slice(withR.AsSpan(), "lstm.R")[0] = 0.1f;
        Assert.Contains("lstm.R", Assert.Throws<ArgumentException>(() => HeModel.Create(c with { Parameters = withR }, parameters)).Message);
        var relu = c with { Config = c.Config with { GateActivation = ActivationKind.Sigmoid } };
        Assert.Contains("gate activation", Assert.Throws<ArgumentException>(() => HeModel.Create(relu, parameters)).Message);
        var hidden = new ModelCheckpoint(c.Config with { HeadHidden = 2 }, c.Preprocessor, new float[new CnnLstm(c.Config with { HeadHidden = 2 }).ParameterCount]);
        Assert.Contains("hidden", Assert.Throws<ArgumentException>(() => HeModel.Create(hidden, parameters)).Message);
    }

    [Theory]
    [InlineData(1, 6)]
    [InlineData(2, 7)]
    [InlineData(3, 7)]
    [InlineData(4, 8)]
    [InlineData(5, 8)]
    [InlineData(8, 9)]
    [InlineData(9, 9)]
    [InlineData(16, 10)]
    public void Levels_grow_with_the_log_of_the_window(int steps, int levels)
    {
        Assert.Equal(levels, HeModel.LevelsRequired(steps));
        // A tanh cell output costs one more level, a degree-2 convolution activation another.
        var config = HeModel.HeFriendlyConfig(15, new HeModelOptions { Steps = steps, CellActivation = ActivationKind.PolyTanh3, ConvActivation = ActivationKind.PolyRelu2 });
        Assert.Equal(levels + 2, HeModel.LevelsRequired(config));
    }

    [Fact]
    public void Default_parameters_are_128_bit_with_a_stable_scale_ladder()
    {
        var p = HeModel.DefaultParameters();
        Assert.False(p.IsInsecureForTests);
        Assert.Equal(16384, p.N);
        Assert.True(p.TotalModulusBits <= Serverless.Privacy.Ckks.CkksParameters.MaxModulusBits(16384));
        Assert.Equal(HeModel.LevelsRequired(8), p.MaxLevel);
        HeModel.CheckScaleLadder(p);
        var bits = p.ModulusBits[1];
        var s = p.Scale;
        for (var l = p.MaxLevel; l >= 1; l--)
        {
            s = s * s / p.Primes[l];
            Assert.InRange(Math.Log2(s), bits - 0.5, bits + 0.5);
        }
        // A plain 2^bits scale on a long chain of 29-bit primes drifts far away: that is what CreateParameters avoids.
        var chain = HeModel.CreateParameters(16384, 12);
        var naive = Serverless.Privacy.Ckks.CkksParameters.Create(16384, [.. chain.ModulusBits], chain.SpecialModulusBits, Math.Pow(2, 29));
        HeModel.CheckScaleLadder(chain);
        Assert.Throws<ArgumentException>(() => HeModel.CheckScaleLadder(naive));
    }

    [Fact]
    public void Frozen_tensors_stay_at_their_initial_values_and_unknown_names_are_refused()
    {
        var config = HeModel.HeFriendlyConfig(fx.Records.Features, fx.Options);
        var model = new CnnLstm(config);
        var p0 = model.InitializeParameters(3);
        var options = new TrainerOptions { Epochs = 1, Patience = 0, FrozenTensors = ["conv.bias", "lstm.R"], WeightDecay = 0.1 };
        var trained = new Trainer(model, options).Train(fx.Records, p0).Parameters;
        foreach (var name in new[] { "conv.bias", "lstm.R" })
            Assert.Equal(model.Layout.Slice(p0.AsSpan(), name).ToArray(), model.Layout.Slice(trained.AsSpan(), name).ToArray());
        Assert.NotEqual(model.Layout.Slice(p0.AsSpan(), "lstm.W").ToArray(), model.Layout.Slice(trained.AsSpan(), "lstm.W").ToArray());
        Assert.Throws<ArgumentException>(() => new Trainer(model, options with { FrozenTensors = ["nope"] }).Train(fx.Records, p0));
    }
}
