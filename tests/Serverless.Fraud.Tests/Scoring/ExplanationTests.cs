using Serverless.Fraud.Features;
using Serverless.Fraud.Scoring;
using Serverless.Model.Nn;

namespace Serverless.Fraud.Tests.Scoring;

public sealed class ExplanationTests
{
    [Theory]
    [InlineData(ScoringRuntime.CSharp)]
    [InlineData(ScoringRuntime.OnnxRuntime)]
    public void Occlusion_on_a_logistic_model_gives_the_known_answer(ScoringRuntime runtime)
    {
        // logit = b + w · x_last: the attribution of feature f is w_f x_f, that of the last real step is
        // w · x_last, every other step's is 0, and the steps add up to logit(x) - logit(0).
        const int k = 4, f = EventFeatures.Count;
        var config = new ModelConfig { Features = f, Steps = k, Architecture = ArchitectureKind.LastVisitLogistic };
        var model = new CnnLstm(config);
        var p = new float[model.ParameterCount];
        var rng = new Random(3);
        var weight = model.Layout.Views.Single(v => v.Shape.Count == 2);
        var bias = model.Layout.Views.Single(v => v.Shape.Count == 1);
        for (var i = 0; i < weight.Length; i++) p[weight.Offset + i] = (float)(rng.NextDouble() - 0.5) * 0.6f;
        p[bias.Offset] = -0.7f;

        var window = new float[k * f];
        for (var i = 0; i < 3 * f; i++) window[i] = (float)(rng.NextDouble() * 2 - 1);
        float[] mask = [1, 1, 1, 0];

        using var runner = ModelRunners.Create(new Serverless.Fraud.Training.FraudModel("known", config, p), runtime);
        var e = new OcclusionExplainer(runner).Explain(window, mask);
        double expectedLogit = p[bias.Offset];
        for (var j = 0; j < f; j++)
        {
            var expected = p[weight.Offset + j] * window[2 * f + j];
            expectedLogit += expected;
            Assert.Equal(EventFeatures.Names[j], e.Features[j].Feature);
            Assert.Equal(expected, e.Features[j].LogOdds, 3);
        }
        Assert.Equal(expectedLogit, e.LogOdds, 3);
        Assert.Equal(0, e.Steps[0], 4);
        Assert.Equal(0, e.Steps[1], 4);
        Assert.Equal(expectedLogit - p[bias.Offset], e.Steps[2], 3);
        Assert.Equal(0, e.Steps[3]);
        Assert.Equal("occlusion", e.Method);
        var top = e.Top(3);
        Assert.Equal(3, top.Count);
        Assert.True(Math.Abs(top[0].LogOdds) >= Math.Abs(top[1].LogOdds));
    }

    [Fact]
    public void Occlusion_sees_which_past_step_matters_to_a_sequence_model()
    {
        // A CNN-only model with one identity channel that reads feature 0 (kernel 1), mean pooling over the
        // 3 steps and an output weight of 3: logit = mean of feature 0 over steps. Only step 1 holds a
        // non-zero value (1), so step 1 and feature 0 carry the whole attribution 3 * 1/3 = 1.
        const int k = 3, f = EventFeatures.Count;
        var config = new ModelConfig { Features = f, Steps = k, Architecture = ArchitectureKind.CnnOnly, ConvChannels = 1, KernelSize = 1, ConvActivation = ActivationKind.Identity };
        var model = new CnnLstm(config);
        var p = new float[model.ParameterCount];
        var conv = model.Layout.Views.First(v => v.Shape.Count == 3);
        var output = model.Layout.Views.Last(v => v.Shape.Count == 2);
        p[conv.Offset + 0] = 1f;   // channel 0 = feature 0 (layout [C, F, K])
        p[output.Offset] = 3f;     // logit = 3 * mean over steps of feature 0
        var window = new float[k * f];
        window[1 * f + 0] = 1f;    // only step 1 has a non-zero feature 0
        var e = new OcclusionExplainer(config, p).Explain(window, [1, 1, 1]);
        Assert.Equal(0, e.Steps[0], 4);
        Assert.Equal(1.0, e.Steps[1], 3);  // 3 * (1/3)
        Assert.Equal(0, e.Steps[2], 4);
        Assert.Equal(1.0, e.Features[0].LogOdds, 3);
        Assert.All(e.Features.Skip(1), a => Assert.Equal(0, a.LogOdds, 4));
    }

    [Fact]
    public void Batched_explanations_equal_one_at_a_time()
    {
        const int k = 5, f = EventFeatures.Count, n = 11;
        var config = Serverless.Fraud.Training.FraudModels.Sequence(k);
        var p = new CnnLstm(config).InitializeParameters(4);
        var rng = new Random(8);
        var windows = new float[n * k * f];
        var masks = new float[n * k];
        for (var w = 0; w < n; w++)
        {
            var len = 1 + w % k;
            for (var s = 0; s < len; s++)
            {
                masks[w * k + s] = 1;
                for (var j = 0; j < f; j++) windows[(w * k + s) * f + j] = (float)(rng.NextDouble() * 2 - 1);
            }
        }
        var explainer = new OcclusionExplainer(config, p);
        var batched = explainer.Explain(windows, masks, n);
        for (var w = 0; w < n; w++)
        {
            var single = explainer.Explain(windows.AsSpan(w * k * f, k * f), masks.AsSpan(w * k, k));
            Assert.Equal(single.LogOdds, batched[w].LogOdds, 5);
            for (var j = 0; j < f; j++) Assert.Equal(single.Features[j].LogOdds, batched[w].Features[j].LogOdds, 5);
            for (var s = 0; s < k; s++) Assert.Equal(single.Steps[s], batched[w].Steps[s], 5);
            for (var s = 1 + w % k; s < k; s++) Assert.Equal(0, batched[w].Steps[s]);
        }
    }
}
