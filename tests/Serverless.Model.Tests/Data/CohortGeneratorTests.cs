using Serverless.Model.Data;

namespace Serverless.Model.Tests.Data;

public sealed class CohortGeneratorTests
{
    [Fact]
    public void The_same_seed_gives_the_same_cohort_and_a_hospital_does_not_depend_on_the_number_of_hospitals()
    {
        var a = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 40, Seed = 3 });
        var b = CohortGenerator.Generate(new CohortOptions { Hospitals = 3, PatientsPerHospital = 40, Seed = 3 });
        var c = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 40, Seed = 4 });
        Import.CohortCsvTests.AssertSamePatients(a.Hospitals[1].Patients, b.Hospitals[1].Patients);
        Assert.NotEqual(a.Hospitals[0].Patients[0].Static, c.Hospitals[0].Patients[0].Static);
    }

    [Fact]
    public void Hospitals_differ_in_age_prevalence_bias_and_size_and_heterogeneity_zero_makes_them_alike()
    {
        var o = new CohortOptions { Hospitals = 4, PatientsPerHospital = 400, Seed = 1 };
        var c = CohortGenerator.Generate(o);
        var ages = c.Hospitals.Select(h => h.Patients.Average(p => p.Static[0])).ToArray();
        var prevalence = c.Hospitals.Select(h => h.Patients.Average(p => p.Label)).ToArray();
        Assert.True(ages.Max() - ages.Min() > 5, string.Join(", ", ages));
        Assert.True(prevalence.Max() - prevalence.Min() > 0.08, string.Join(", ", prevalence));
        Assert.True(c.Hospitals.Select(h => h.Patients.Count).Distinct().Count() > 1);
        var iid = Enumerable.Range(0, 4).Select(h => CohortGenerator.Profile(o with { Heterogeneity = 0 }, h)).Distinct().Count();
        Assert.Equal(1, iid);
    }

    [Fact]
    public void Values_are_in_realistic_ranges_with_the_requested_missing_rate_and_correlated_glucose_and_hba1c()
    {
        var c = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 500, Seed = 2, MissingRate = 0.05, OutlierRate = 0 });
        var visits = c.All().Patients.SelectMany(p => p.Visits).ToArray();
        var missing = visits.SelectMany(v => v).Count(double.IsNaN) / (double)(visits.Length * 7);
        Assert.InRange(missing, 0.04, 0.06);
        var pairs = visits.Where(v => !double.IsNaN(v[3]) && !double.IsNaN(v[4])).Select(v => (g: v[3], a: v[4])).ToArray();
        Assert.InRange(pairs.Average(p => p.a), 5.0, 7.5);
        Assert.InRange(pairs.Average(p => p.g), 90, 170);
        Assert.True(Correlation(pairs.Select(p => p.g).ToArray(), pairs.Select(p => p.a).ToArray()) > 0.8);
        Assert.All(c.All().Patients, p => Assert.InRange(p.Visits.Count, 4, 8));
        Assert.InRange(c.All().Patients.Average(p => p.Label), 0.15, 0.6);
    }

    private static double Correlation(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Length; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my); }
        return sxy / Math.Sqrt(sxx * syy);
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CohortGenerator.Generate(new CohortOptions { Hospitals = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => CohortGenerator.Generate(new CohortOptions { Visits = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => CohortGenerator.Generate(new CohortOptions { MissingRate = 0.7 }));
    }

    [Fact]
    public void Sequence_datasets_validate_shape_labels_and_masks_and_split_deterministically()
    {
        Assert.Throws<ArgumentException>(() => new SequenceDataset(1, 2, 1, 2, new float[2], [1, 1], [2]));
        Assert.Throws<ArgumentException>(() => new SequenceDataset(1, 2, 1, 2, new float[2], [0, 1], [0]));
        Assert.Throws<ArgumentException>(() => new SequenceDataset(1, 2, 1, 2, [float.NaN, 0], [1, 0], [0]));
        var ds = SharedTraining.Train;
        var (a1, b1) = ds.Split(0.3, 5);
        var (a2, _) = ds.Split(0.3, 5);
        Assert.Equal(a1.Values, a2.Values);
        Assert.Equal(ds.Count, a1.Count + b1.Count);
        Assert.Equal(ds.Labels.Sum(), a1.Labels.Sum() + b1.Labels.Sum());
    }
}
