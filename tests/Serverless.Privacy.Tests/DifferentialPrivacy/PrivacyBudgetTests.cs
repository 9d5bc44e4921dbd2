using Serverless.Privacy.DifferentialPrivacy;

namespace Serverless.Privacy.Tests.DifferentialPrivacy;

public sealed class PrivacyBudgetTests
{
    [Fact]
    public void Refuses_the_round_that_would_exceed_the_budget_and_spends_nothing()
    {
        var budget = new PrivacyBudget(epsilonMax: 1.0, delta: 1e-5);
        var rounds = 0;
        while (budget.TrySpend(0.05, 1.5, 1, out _)) rounds++;
        Assert.True(rounds > 0);
        var before = budget.EpsilonSpent;
        Assert.True(before <= 1.0);
        Assert.True(budget.EpsilonAfter(0.05, 1.5) > 1.0);
        Assert.Throws<PrivacyBudgetExceededException>(() => budget.Spend(0.05, 1.5));
        Assert.Equal(before, budget.EpsilonSpent);
        Assert.Equal(rounds, budget.StepsSpent);
        Assert.Equal(rounds, new PrivacyBudget(1.0, 1e-5).RemainingSteps(0.05, 1.5));
    }

    [Fact]
    public void Spent_epsilon_is_monotone_and_matches_one_shot_composition()
    {
        var budget = new PrivacyBudget(10, 1e-5);
        var last = 0.0;
        for (var i = 0; i < 50; i++)
        {
            var eps = budget.Spend(0.1, 1.2);
            Assert.True(eps >= last);
            last = eps;
        }
        Assert.Equal(SampledGaussianRdp.Epsilon(0.1, 1.2, 50, 1e-5), budget.EpsilonSpent, 9);
        var restored = new PrivacyBudget(10, 1e-5, budget.Orders, budget.RdpSpent);
        Assert.Equal(budget.EpsilonSpent, restored.EpsilonSpent, 12);
    }

    [Fact]
    public void Clipping_bounds_the_norm_and_distributed_noise_sums_to_the_central_variance()
    {
        var v = Enumerable.Range(0, 100).Select(i => (float)i).ToArray();
        var before = GaussianMechanism.ClipL2(v, 2.0);
        Assert.True(before > 2.0);
        Assert.InRange(GaussianMechanism.Norm(v), 1.999, 2.001);
        Assert.Throws<ArgumentException>(() => GaussianMechanism.ClipL2(new[] { float.NaN }, 1));

        // 10 clients, each with std z*S/sqrt(10): the sum's variance is (z*S)^2.
        var rng = new Random(7);
        const int n = 20_000;
        var sum = new float[n];
        var std = GaussianMechanism.DistributedStd(1.3, 0.5, 10);
        for (var c = 0; c < 10; c++) GaussianMechanism.AddGaussianNoise(sum, std, rng);
        var variance = sum.Select(x => (double)x * x).Average();
        var target = 1.3 * 0.5 * (1.3 * 0.5);
        Assert.InRange(variance, target * 0.96, target * 1.04);   // 4 % is > 5 sigma for 20k draws
    }
}
