using Serverless.Model.Data;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Tests.Preprocessing;

public sealed class PreprocessingTests
{
    private static readonly GeneratedCohort Cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 3, PatientsPerHospital = 50, Visits = 6, Seed = 4 });

    [Fact]
    public void Sums_from_clients_add_up_to_the_pooled_sums_and_survive_the_vector_round_trip()
    {
        var schema = Cohort.Schema;
        var total = new FeatureSums(schema.NumericColumns());
        foreach (var h in Cohort.Hospitals)
        {
            var local = FeatureSums.Accumulate(schema, h.Patients);
            total.Add(FeatureSums.FromVector(schema.NumericColumns(), local.ToVector()));
        }
        var pooled = FeatureSums.Accumulate(schema, Cohort.All().Patients);
        Assert.Equal(pooled.Counts, total.Counts);
        for (var i = 0; i < pooled.Sums.Length; i++)
        {
            Assert.Equal(pooled.Sums[i], total.Sums[i], pooled.Sums[i] * 1e-12);
            Assert.Equal(pooled.SumSquares[i], total.SumSquares[i], pooled.SumSquares[i] * 1e-12);
        }
    }

    [Fact]
    public void Statistics_from_sums_equal_the_directly_computed_mean_and_population_sd()
    {
        var schema = Cohort.Schema;
        var stats = FeatureStatistics.FromSums(FeatureSums.Accumulate(schema, Cohort.All().Patients));
        var hba1c = Cohort.All().Patients.SelectMany(p => p.Visits).Select(v => v[4]).Where(x => !double.IsNaN(x)).ToArray();
        var col = stats.Columns.ToList().IndexOf("hba1c");
        var mean = hba1c.Average();
        var sd = Math.Sqrt(hba1c.Select(x => (x - mean) * (x - mean)).Average());
        Assert.Equal(mean, stats.Means[col], 1e-9);
        Assert.Equal(sd, stats.StandardDeviations[col], 1e-9);
        Assert.Equal(hba1c.Length, stats.Counts[col]);
        Assert.Equal(stats, FeatureStatistics.FromJson(stats.ToJson()), new StatsComparer());
    }

    private sealed class StatsComparer : IEqualityComparer<FeatureStatistics>
    {
        public bool Equals(FeatureStatistics? a, FeatureStatistics? b) =>
            a!.Columns.SequenceEqual(b!.Columns) && a.Means.SequenceEqual(b.Means) && a.StandardDeviations.SequenceEqual(b.StandardDeviations) && a.OutlierZ == b.OutlierZ;
        public int GetHashCode(FeatureStatistics obj) => 0;
    }

    [Fact]
    public void Invalid_sums_and_statistics_are_rejected()
    {
        var cols = new[] { "a", "b" };
        Assert.Throws<ArgumentException>(() => FeatureSums.FromVector(cols, new double[5]));
        Assert.Throws<ArgumentException>(() => FeatureSums.FromVector(cols, [-1, 0, 0, 0, 0, 0]));
        Assert.Throws<ArgumentException>(() => new FeatureSums(cols).Add(new FeatureSums(["a", "c"])));
        Assert.Throws<InvalidDataException>(() => FeatureStatistics.FromJson("{\"Columns\":[\"a\"],\"Means\":[1,2],\"StandardDeviations\":[1],\"Counts\":[1],\"OutlierZ\":3}"));
        Assert.Throws<InvalidDataException>(() => FeatureStatistics.FromJson("{\"Columns\":[\"a\"],\"Means\":[1],\"StandardDeviations\":[-1],\"Counts\":[1],\"OutlierZ\":3}"));
    }

    private static readonly FeatureSchema Tiny = new(
        [new FeatureSpec("age", FeatureKind.Numeric), new FeatureSpec("sex", FeatureKind.Categorical, ["f", "m"])],
        [new FeatureSpec("x", FeatureKind.Numeric)],
        ["no", "yes"]);

    private static Preprocessor TinyPre(int steps, bool carry) =>
        new Preprocessor(Tiny, new FeatureStatistics(["age", "x"], [50, 10], [10, 2], [4, 4], 3), steps, carry).Validated();

    [Fact]
    public void Transform_imputes_caps_standardizes_one_hot_encodes_and_pads_with_a_mask()
    {
        var p = new PatientRecord("p", "s", [70, 1], [[12], [double.NaN], [100]], 1);
        var q = new PatientRecord("q", "s", [double.NaN, double.NaN], [[8]], 0);
        var ds = TinyPre(steps: 4, carry: false).Transform([p, q]);
        Assert.Equal(4, ds.Features); // age, sex=f, sex=m, x
        float[] row(int n, int t) => ds.Values.AsSpan((n * 4 + t) * 4, 4).ToArray();
        Assert.Equal(new float[] { 2, 0, 1, 1 }, row(0, 0));    // age z=2, male, x z=1
        Assert.Equal(new float[] { 2, 0, 1, 0 }, row(0, 1));    // missing x -> mean -> 0
        Assert.Equal(new float[] { 2, 0, 1, 3 }, row(0, 2));    // z=45 capped at 3
        Assert.Equal(new float[] { 0, 0, 0, 0 }, row(0, 3));    // padding
        Assert.Equal(new float[] { 1, 1, 1, 0 }, ds.SequenceMask(0).ToArray());
        Assert.Equal(new float[] { 0, 0, 0, -1 }, row(1, 0));   // missing age -> 0, missing sex -> no category
        Assert.Equal(1, ds.Length(1));
        Assert.Equal(new[] { 1, 0 }, ds.Labels);
    }

    [Fact]
    public void Carry_forward_uses_the_previous_observation_and_windowing_keeps_the_latest_visits()
    {
        var p = new PatientRecord("p", "s", [50, 0], [[4], [14], [double.NaN], [12]], 1);
        var carry = TinyPre(steps: 3, carry: true).Transform([p]);
        // Window = visits 2..4: 14, (14 carried), 12 -> z = 2, 2, 1.
        Assert.Equal(new float[] { 2, 2, 1 }, Enumerable.Range(0, 3).Select(t => carry.Values[t * 4 + 3]).ToArray());
        var mean = TinyPre(steps: 3, carry: false).Transform([p]);
        Assert.Equal(new float[] { 2, 0, 1 }, Enumerable.Range(0, 3).Select(t => mean.Values[t * 4 + 3]).ToArray());
    }

    [Fact]
    public void The_fitted_preprocessor_round_trips_through_json_and_checks_its_statistics_against_the_schema()
    {
        var pre = Preprocessor.Fit(Cohort.Schema, Cohort.All().Patients, steps: 6);
        var back = Preprocessor.FromJson(pre.ToJson());
        var a = pre.Transform(Cohort.Hospitals[0].Patients);
        var b = back.Transform(Cohort.Hospitals[0].Patients);
        Assert.Equal(a.Values, b.Values);
        Assert.Equal(15, pre.Features);
        Assert.Contains("smoking=current", pre.FeatureNames());
        var wrong = pre with { Statistics = pre.Statistics with { Columns = pre.Statistics.Columns.Reverse().ToArray() } };
        Assert.Throws<InvalidDataException>(() => wrong.Validated());
    }

    [Fact]
    public void Pseudonyms_are_keyed_stable_and_never_reveal_the_key()
    {
        var k1 = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        using var a = new Pseudonymizer(k1);
        using var b = new Pseudonymizer(k1.Select(x => (byte)(x ^ 1)).ToArray());
        Assert.Equal(a.Pseudonymize("Bobby Jackson"), a.Pseudonymize(" bobby JACKSON "));
        Assert.NotEqual(a.Pseudonymize("Bobby Jackson"), b.Pseudonymize("Bobby Jackson"));
        Assert.NotEqual(a.Pseudonymize("Bobby Jackson"), a.Pseudonymize("Bobby Jacksen"));
        Assert.Matches("^p_[0-9a-f]{32}$", a.Pseudonymize("x"));
        Assert.DoesNotContain("00-01-02", a.ToString());
        Assert.Throws<ArgumentException>(() => new Pseudonymizer(new byte[16]));
        a.Dispose();
        Assert.Throws<ObjectDisposedException>(() => a.Pseudonymize("x"));
    }
}
