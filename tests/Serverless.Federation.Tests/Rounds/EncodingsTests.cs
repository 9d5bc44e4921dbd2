using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Preprocessing;

namespace Serverless.Federation.Tests.Rounds;

public sealed class EncodingsTests
{
    private static uint[] Add(params uint[][] vectors)
    {
        var sum = new uint[vectors[0].Length];
        foreach (var v in vectors)
            for (var i = 0; i < v.Length; i++) sum[i] = unchecked(sum[i] + v[i]);
        return sum;
    }

    [Fact]
    public void Statistics_sums_decode_exactly_up_to_the_fixed_point_resolution_even_with_negative_and_large_values()
    {
        var random = new Random(3);
        var clients = Enumerable.Range(0, 7).Select(_ => Enumerable.Range(0, 12).Select(i => (random.NextDouble() - 0.3) * Math.Pow(10, i % 10)).ToArray()).ToArray();
        var sum = Add(clients.Select(c => StatisticsEncoding.Encode(c)).ToArray());
        var decoded = StatisticsEncoding.Decode(sum);
        for (var i = 0; i < decoded.Length; i++)
        {
            var exact = clients.Sum(c => c[i]);
            Assert.True(Math.Abs(decoded[i] - exact) <= clients.Length * Math.Pow(2, -StatisticsEncoding.DefaultFractionBits - 1) + 1e-9 * Math.Abs(exact),
                $"entry {i}: {decoded[i]} vs {exact}");
        }
        Assert.All(StatisticsEncoding.Encode(clients[0]), limb => Assert.True(limb <= 0xFFFF));
    }

    [Fact]
    public void Statistics_of_a_cohort_match_the_pooled_feature_sums()
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 3, PatientsPerHospital = 60, Visits = 6, Seed = 2 });
        var schema = cohort.Schema;
        var sum = Add(cohort.Hospitals.Select(h => StatisticsEncoding.Encode(FeatureSums.Accumulate(schema, h.Patients))).ToArray());
        var decoded = StatisticsEncoding.DecodeSums(schema.NumericColumns(), sum);
        var pooled = FeatureSums.Accumulate(schema, cohort.Hospitals.SelectMany(h => h.Patients));
        Assert.Equal(pooled.Counts, decoded.Counts);
        for (var i = 0; i < pooled.Sums.Length; i++)
        {
            Assert.Equal(pooled.Sums[i], decoded.Sums[i], 3 * Math.Pow(2, -12));
            Assert.Equal(pooled.SumSquares[i], decoded.SumSquares[i], 3 * Math.Pow(2, -12));
        }
    }

    [Fact]
    public void Statistics_refuse_values_that_do_not_fit()
    {
        Assert.Throws<ArgumentException>(() => StatisticsEncoding.Encode([double.NaN]));
        Assert.Throws<ArgumentException>(() => StatisticsEncoding.Encode([1e16]));
        Assert.Throws<ArgumentException>(() => StatisticsEncoding.Decode(new uint[5]));
        Assert.Throws<ArgumentException>(() => StatisticsEncoding.DecodeSums(["a"], new uint[4]));
    }

    [Fact]
    public void Update_encoding_decodes_the_weighted_mean_of_clipped_updates()
    {
        var encoding = new UpdateRingEncoding(32, 0.8f, 4, 50);
        var random = new Random(9);
        var updates = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 50).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()).ToArray();
        double[] weights = [1, 0.5, 0.25, 1];
        var sum = Add(updates.Select((u, k) => UpdateEncoding.Encode(u, weights[k], encoding, random)).ToArray());
        var (mean, total) = UpdateEncoding.Decode(sum, encoding);
        Assert.Equal(weights.Sum(), total, 1e-6);
        for (var i = 0; i < 50; i++)
        {
            var expected = updates.Select((u, k) => u[i] * weights[k]).Sum() / weights.Sum();
            Assert.Equal(expected, mean[i], 1e-5);
        }
        Assert.Throws<ArgumentException>(() => UpdateEncoding.Encode(new float[49], 1, encoding, random));
        Assert.Throws<ArgumentException>(() => UpdateEncoding.Encode(new float[50], 0, encoding, random));
        Assert.Throws<ArgumentException>(() => UpdateEncoding.Encode(new float[50], 1.5, encoding, random));
    }

    [Fact]
    public void The_weight_entry_never_wraps_when_every_client_rounds_it_up()
    {
        // Full weights at the codec's exact headroom: with the weight at the top of the range, all four
        // clients rounding it up (1 in 16 draws) summed to 2^(k-1) and decoded as -4.
        var encoding = new UpdateRingEncoding(16, 0.5f, 4, 3);
        for (var seed = 0; seed < 400; seed++)
        {
            var random = new Random(seed);
            var sum = Add(Enumerable.Range(0, 4).Select(_ => UpdateEncoding.Encode([0.5f, -0.5f, 0.1f], 1.0, encoding, random)).ToArray());
            var (mean, total) = UpdateEncoding.Decode(sum, encoding);
            Assert.Equal(4.0, total, 1e-2);
            Assert.Equal(0.1, mean[2], 1e-2);
        }
    }
}
