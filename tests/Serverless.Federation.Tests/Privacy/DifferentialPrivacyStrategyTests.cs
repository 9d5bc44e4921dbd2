using Serverless.Federation.Privacy;
using Serverless.Federation.Strategies;
using Serverless.Privacy.DifferentialPrivacy;

namespace Serverless.Federation.Tests.Privacy;

public sealed class DifferentialPrivacyStrategyTests
{
    [Fact]
    public void Central_mode_clips_and_adds_noise_of_std_zS_over_n()
    {
        const int dim = 20_000;
        var dp = new DifferentialPrivacyStrategy(new FedAvg(), new DpOptions(1.0, 2.0, NoisePlacement.Central, 1, 1e-5, 100), population: 4, new Random(3));
        var global = new float[dim];
        dp.ConfigureRound(1, global, ["a", "b", "c", "d"]);
        var huge = Enumerable.Repeat(100f, dim).ToArray();
        var results = new[] { "a", "b", "c", "d" }.Select(id => new FitResult(id, new float[dim], 1)).ToList();
        results[0] = results[0] with { Delta = huge };
        var r = dp.AggregateRound(1, global, results);
        // Mean of one clipped (norm 1) and three zero updates, plus N(0, (2*1/4)^2) per coordinate.
        var mean = r.Parameters.Average(x => (double)x);
        var variance = r.Parameters.Average(x => (double)x * x) - mean * mean;
        Assert.InRange(Math.Sqrt(variance), 0.5 * 0.97, 0.5 * 1.03);
        Assert.InRange(mean, (0.25 / Math.Sqrt(dim)) - 0.02, (0.25 / Math.Sqrt(dim)) + 0.02);
        Assert.True(r.Metrics["epsilon"] > 0);
    }

    [Fact]
    public void Distributed_mode_tells_clients_to_clip_and_add_their_share()
    {
        var dp = new DifferentialPrivacyStrategy(new FedAvg(), new DpOptions(0.5, 1.2, NoisePlacement.Distributed, 3, 1e-5, 100), population: 4);
        var ins = dp.ConfigureRound(1, [0f], ["a", "b", "c", "d"]);
        Assert.All(ins, i =>
        {
            Assert.Equal(0.5, i.Config.ClipNorm);
            Assert.Equal(1.2 * 0.5 / Math.Sqrt(3), i.Config.NoiseStd, 12);
            Assert.True(i.Config.UniformWeight);
        });
    }

    [Fact]
    public void Refuses_a_round_beyond_the_budget()
    {
        var z = DifferentialPrivacyStrategy.CalibrateNoise(epsilon: 2, delta: 1e-5, q: 1, rounds: 3);
        Assert.Equal(2, SampledGaussianRdp.Epsilon(1, z, 3, 1e-5), 3);
        var dp = new DifferentialPrivacyStrategy(new FedAvg(), new DpOptions(1, z, NoisePlacement.Central, 1, 1e-5, 2.0 + 1e-6), 2, new Random(1));
        for (var round = 1; round <= 3; round++)
        {
            dp.ConfigureRound(round, [0f], ["a", "b"]);
            dp.AggregateRound(round, [0f], [new FitResult("a", [0.1f], 1), new FitResult("b", [0.2f], 1)]);
        }
        Assert.Throws<PrivacyBudgetExceededException>(() => dp.ConfigureRound(4, [0f], ["a", "b"]));
        Assert.Equal(3, dp.Budget.StepsSpent);
    }
}
