using Serverless.Federation.SecureAggregation;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Federation.Tests.SecureAggregation;

public sealed class SecureUpdateAggregationTests
{
    private static List<(string, float[], double)> Updates(int n, int dim, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(k => ($"h{k}", Enumerable.Range(0, dim).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray(), (double)(50 + 10 * k))).ToList();
    }

    private static float[] PlainWeightedMean(IEnumerable<(string Id, float[] U, double W)> updates)
    {
        var list = updates.ToList();
        var mean = new float[list[0].U.Length];
        var total = list.Sum(u => u.W);
        foreach (var (_, u, w) in list) for (var i = 0; i < mean.Length; i++) mean[i] += (float)(u[i] * w / total);
        return mean;
    }

    [Theory]
    [InlineData(32, false)]
    [InlineData(20, false)]
    [InlineData(32, true)]
    public void Secure_weighted_mean_matches_the_plain_one_within_fixed_point_resolution(int bits, bool plus)
    {
        var updates = Updates(12, 300, bits);
        var options = new SecureAggregationOptions { RingBits = bits, SecAggPlus = plus, Degree = plus ? 6 : 0 };
        var drops = new Dictionary<string, SecAggPhase> { ["h3"] = SecAggPhase.MaskedInputCollection, ["h7"] = SecAggPhase.Unmasking };
        var outcome = SecureUpdateAggregation.Aggregate(updates, options, 0.5f, drops, new Random(1));
        Assert.DoesNotContain("h3", outcome.Included);
        Assert.Contains("h7", outcome.Included);
        var expected = PlainWeightedMean(updates.Where(u => u.Item1 != "h3"));
        var resolution = 12 * 0.5 * 12 / Math.Pow(2, bits - 1) * 4;  // a few units of the codec's step, amplified by the weight division
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], outcome.Mean[i], resolution);
        Assert.True(outcome.Stats.BytesUploaded.Values.Max() > 300 * bits / 8);
        Assert.True(outcome.Stats.ServerTime > TimeSpan.Zero);
    }
}
