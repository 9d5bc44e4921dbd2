using Serverless.Federation.Aggregation;

namespace Serverless.Federation.Tests.Aggregation;

public sealed class AnomalyDetectorTests
{
    private static List<float[]> Honest(int n, int dim, Random rng) =>
        Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, dim).Select(i => (float)(Math.Cos(i * 0.1) + 0.8 * (rng.NextDouble() - 0.5))).ToArray()).ToList();

    [Fact]
    public void Flags_sign_flip_scaling_and_noise_and_not_the_honest()
    {
        var rng = new Random(3);
        var updates = Honest(9, 200, rng);
        var flipped = updates[0].Select(x => -x).ToArray();
        var scaled = updates[1].Select(x => 10 * x).ToArray();
        var noise = Enumerable.Range(0, 200).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        updates.AddRange([flipped, scaled, noise]);
        var scores = AnomalyDetector.Score(updates, new AnomalyOptions(NormZThreshold: 3.5, MinCosine: 0.2));
        Assert.All(scores.Take(9), s => Assert.False(s.Flagged, s.Reason));
        Assert.Contains("cosine", scores[9].Reason);
        Assert.Contains("norm", scores[10].Reason);
        Assert.True(scores[11].Flagged);
        Assert.Throws<ArgumentException>(() => AnomalyDetector.Score(updates.Take(2).ToList(), new AnomalyOptions()));
    }
}
