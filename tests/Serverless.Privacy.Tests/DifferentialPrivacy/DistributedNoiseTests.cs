using Serverless.Privacy.DifferentialPrivacy;

namespace Serverless.Privacy.Tests.DifferentialPrivacy;

// Issue 20, statistics stage: the distributed Gaussian sized for colluding clients, its double-precision form, and the
// composition of different Gaussian steps in one accountant (decision 0023).
public sealed class DistributedNoiseTests
{
    [Fact]
    public void The_client_share_grows_to_cover_colluders_and_never_below_one_honest_share()
    {
        Assert.Equal(0.25, GaussianMechanism.DistributedStd(1.0, 0.5, 4), 12);                   // z S / sqrt(4): unchanged default
        Assert.Equal(0.5, GaussianMechanism.DistributedStd(1.0, 0.5, 4, colluding: 3), 12);      // one honest share left: the full z S
        Assert.Equal(1.0 / Math.Sqrt(2), GaussianMechanism.DistributedStd(1.0, 1.0, 5, colluding: 3), 12);
        Assert.Equal(8.0, GaussianMechanism.DistributedStd(4.0, 2.0, 3, colluding: 7), 12);      // more colluders than survivors: still one share
        Assert.Throws<ArgumentOutOfRangeException>(() => GaussianMechanism.DistributedStd(1, 1, 3, colluding: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => GaussianMechanism.DistributedStd(1, 1, 0));
    }

    [Fact]
    public void With_t_minus_one_colluders_subtracted_the_sum_still_carries_the_target_variance()
    {
        // t = 4 survivors, 3 of them collude and remove their own shares: the rest must be N(0, (z S)^2).
        const double z = 2.0, s = 1.5;
        const int t = 4, trials = 20_000;
        var std = GaussianMechanism.DistributedStd(z, s, t, colluding: t - 1);
        var rng = new Random(20);
        double sum = 0, sumSq = 0;
        for (var i = 0; i < trials; i++)
        {
            var shares = new double[t];
            for (var c = 0; c < t; c++)
            {
                var one = new double[1];
                GaussianMechanism.AddGaussianNoise(one, std, rng);
                shares[c] = one[0];
            }
            var left = shares[0];   // the honest client's share; the colluders know and subtract theirs
            sum += left;
            sumSq += left * left;
        }
        var mean = sum / trials;
        var measured = Math.Sqrt(sumSq / trials - mean * mean);
        Assert.InRange(measured, 0.97 * z * s, 1.03 * z * s);
        // Without the slack the honest share is z S / 2, and the same coalition sees half the noise the sum was calibrated for.
        Assert.Equal(z * s / 2, GaussianMechanism.DistributedStd(z, s, t), 12);
    }

    [Fact]
    public void Double_noise_has_the_requested_std_and_keeps_large_counts_exact_to_the_noise()
    {
        var values = new double[40_001];
        Array.Fill(values, 12_345_678.25);   // a count a float would round to 12,345,678
        GaussianMechanism.AddGaussianNoise(values, 3.0, new Random(7));
        var deviations = values.Select(v => v - 12_345_678.25).ToArray();
        var mean = deviations.Average();
        var sd = Math.Sqrt(deviations.Select(d => (d - mean) * (d - mean)).Average());
        Assert.InRange(mean, -0.05, 0.05);
        Assert.InRange(sd, 2.95, 3.05);
        var untouched = new double[] { 1.5, 2.5 };
        GaussianMechanism.AddGaussianNoise(untouched, 0, new Random(1));
        Assert.Equal([1.5, 2.5], untouched);
        Assert.Throws<ArgumentOutOfRangeException>(() => GaussianMechanism.AddGaussianNoise(untouched, -1, new Random(1)));
    }

    [Fact]
    public void Different_Gaussian_steps_compose_by_adding_their_RDP_curves()
    {
        // At q = 1 a step of noise multiplier z costs alpha / (2 z^2) at every order, so a step at z = 4 and one at z = 1 together
        // cost what one step at 1 / sqrt(1 + 1/16) does.
        var budget = new PrivacyBudget(100, 1e-5);
        var composed = budget.EpsilonAfter([(1.0, 4.0), (1.0, 1.0)]);
        Assert.Equal(budget.EpsilonAfter(1.0, 1.0 / Math.Sqrt(1 + 1.0 / 16)), composed, 9);
        Assert.True(composed > budget.EpsilonAfter(1.0, 1.0));
        Assert.Equal(budget.EpsilonAfter(0.3, 1.2, 2), budget.EpsilonAfter([(0.3, 1.2), (0.3, 1.2)]), 12);
        Assert.Equal(0, budget.EpsilonAfter([]));
        // Spending the two one after the other reaches the same figure.
        budget.Spend(1.0, 4.0);
        Assert.Equal(composed, budget.Spend(1.0, 1.0), 12);
    }
}
