using Serverless.Federation.Aggregation;

namespace Serverless.Federation.Tests.Aggregation;

public sealed class AggregatorsTests
{
    [Fact]
    public void Weighted_mean_known_answer()
    {
        var dest = new float[2];
        Aggregators.WeightedMean([[1, 2], [3, 6]], [1, 3], dest);
        Assert.Equal([2.5f, 5f], dest);
        Assert.Throws<ArgumentException>(() => Aggregators.WeightedMean([[1, 2], [3]], [1, 1], dest));
        Assert.Throws<ArgumentException>(() => Aggregators.WeightedMean([[1, 2]], [0], dest));
    }

    private static (List<float[]> Honest, List<float[]> All) Population(int honest, int attackers, float attackValue, int dim = 50, int seed = 1)
    {
        var rng = new Random(seed);
        var h = Enumerable.Range(0, honest).Select(_ => Enumerable.Range(0, dim).Select(i => (float)(0.1 * Math.Sin(i) + 0.02 * (rng.NextDouble() - 0.5))).ToArray()).ToList();
        var a = Enumerable.Range(0, attackers).Select(_ => Enumerable.Repeat(attackValue, dim).ToArray());
        return (h, h.Concat(a).ToList());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Median_and_trimmed_mean_stay_within_the_honest_range_under_f_attackers(int f)
    {
        var (honest, all) = Population(7, f, 1e6f);
        var median = new float[50];
        var trimmed = new float[50];
        Aggregators.CoordinateMedian(all, median);
        Aggregators.TrimmedMean(all, 0.3, trimmed);   // floor(0.3 * n) >= f for n = 8 and 10
        for (var i = 0; i < 50; i++)
        {
            var lo = honest.Min(u => u[i]);
            var hi = honest.Max(u => u[i]);
            Assert.InRange(median[i], lo, hi);
            Assert.InRange(trimmed[i], lo, hi);
        }
        // The plain mean is dragged far away by the same attackers.
        var mean = new float[50];
        Aggregators.WeightedMean(all, Enumerable.Repeat(1.0, all.Count).ToArray(), mean);
        Assert.True(mean[0] > 1000);
    }

    [Fact]
    public void Multi_krum_drops_the_attackers()
    {
        var (honest, all) = Population(8, 2, 5f);
        var dest = new float[50];
        var chosen = Aggregators.MultiKrum(all, byzantine: 2, select: 0, dest);
        Assert.Equal(Enumerable.Range(0, 8), chosen);
        var expected = new float[50];
        Aggregators.WeightedMean(honest, Enumerable.Repeat(1.0, 8).ToArray(), expected);
        Assert.Equal(expected, dest);
        Assert.Throws<ArgumentException>(() => Aggregators.MultiKrum(all.Take(6).ToList(), 2, 0, dest));
    }

    [Fact]
    public void Cosine_and_norm()
    {
        Assert.Equal(5, Aggregators.Norm([3, 4]), 12);
        Assert.Equal(-1, Aggregators.Cosine([1, 2], [-2, -4]), 12);
        Assert.Equal(0, Aggregators.Cosine([0, 0], [1, 1]));
    }
}
