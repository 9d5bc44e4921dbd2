using Serverless.Federation.Attacks;

namespace Serverless.Federation.Tests.Attacks;

/// <summary>Known answers of the attack statistics, and that the attacks see leakage where there is some and none where there is none.</summary>
public sealed class MembershipInferenceTests
{
    [Fact]
    public void Auc_and_advantage_have_their_known_values_on_small_inputs()
    {
        // Members {3, 2}, non-members {1, 2}: pairs (3>1, 3>2, 2>1, 2=2) -> (1 + 1 + 1 + 0.5) / 4.
        Assert.Equal(0.875, MembershipInference.Auc([3, 2], [1, 2]), 12);
        Assert.Equal(1.0, MembershipInference.Auc([5, 6], [1, 2]), 12);
        Assert.Equal(0.0, MembershipInference.Auc([1, 2], [5, 6]), 12);
        var (advantage, threshold) = MembershipInference.BestThreshold([3, 2], [1, 2]);
        Assert.Equal(0.5, advantage, 12);          // threshold 3: TPR 1/2, FPR 0
        Assert.Equal(3, threshold);
        Assert.Equal(0.5, MembershipInference.AdvantageAt([3, 2], [1, 2], 2), 12);   // TPR 1, FPR 1/2
        Assert.Equal(0.0, MembershipInference.BestThreshold([1, 1], [5, 6]).Advantage);
    }

    [Fact]
    public void The_loss_attack_finds_a_loss_gap_and_its_held_out_advantage_stays_near_zero_without_one()
    {
        var rng = new Random(4);
        double[] Draw(int n, double mean) => Enumerable.Range(0, n).Select(_ => mean + Normal(rng)).ToArray();
        var leaky = MembershipInference.LossThreshold(Draw(2000, 0), Draw(2000, 1), seed: 1);   // members' losses one sd lower
        // Two unit normals one sd apart: AUC = Phi(1/sqrt 2) = 0.760, best advantage = 2 Phi(1/2) - 1 = 0.383.
        Assert.InRange(leaky.Auc, 0.74, 0.78);
        Assert.InRange(leaky.Advantage, 0.34, 0.42);
        var none = MembershipInference.LossThreshold(Draw(2000, 0), Draw(2000, 0), seed: 1);
        Assert.InRange(none.Auc, 0.47, 0.53);
        Assert.InRange(none.Advantage, -0.04, 0.04);
        Assert.True(none.AdvantageInSample > none.Advantage, "the in-sample best threshold is optimistic");
    }

    [Fact]
    public void The_shadow_attack_transfers_what_the_shadows_teach()
    {
        var rng = new Random(5);
        (double, int)[] Draw(int n, double mean) => Enumerable.Range(0, n).Select(i => (mean + Normal(rng), i % 2)).ToArray();
        var score = MembershipInference.Shadow(Draw(1000, 1), Draw(1000, 0), Draw(1000, 1), Draw(1000, 0));
        Assert.InRange(score.Auc, 0.73, 0.79);
        Assert.InRange(score.Advantage, 0.32, 0.42);
    }

    private static double Normal(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
