using Serverless.Model.Preprocessing;

namespace Serverless.Model.Data;

/// <summary>One hospital's model-ready train and test sequences.</summary>
public sealed record HospitalDatasets(string Hospital, SequenceDataset Train, SequenceDataset Test);

/// <summary>Model-ready per-hospital datasets and the preprocessor that made them.</summary>
public sealed record FederatedDatasets(Preprocessor Preprocessor, IReadOnlyList<HospitalDatasets> Hospitals)
{
    /// <summary>All hospitals' training sequences pooled (the centralised baseline).</summary>
    public SequenceDataset PooledTrain() => SequenceDataset.Concat(Hospitals.Select(h => h.Train).ToArray());

    /// <summary>All hospitals' test sequences pooled (the common hold-out set).</summary>
    public SequenceDataset PooledTest() => SequenceDataset.Concat(Hospitals.Select(h => h.Test).ToArray());
}

/// <summary>Turns a generated cohort into per-hospital train/test sequences.</summary>
public static class CohortDatasets
{
    /// <summary>
    /// Splits each hospital's patients (seeded), adds up every hospital's training <see cref="FeatureSums"/>
    /// (exactly what a federation obtains by secure aggregation), fits the statistics from that total and
    /// transforms every split with them.
    /// </summary>
    public static FederatedDatasets Build(GeneratedCohort cohort, int steps, double testFraction = 0.25, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(cohort);
        if (!(testFraction > 0 && testFraction < 1)) throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "0..1 exclusive");
        var splits = new List<(string Hospital, PatientRecord[] Train, PatientRecord[] Test)>();
        var total = new FeatureSums(cohort.Schema.NumericColumns());
        for (var h = 0; h < cohort.Hospitals.Count; h++)
        {
            var patients = cohort.Hospitals[h].Patients.ToArray();
            new Random(unchecked(seed * 613 + h)).Shuffle(patients);
            var cut = (int)Math.Round(patients.Length * testFraction);
            var test = patients[..cut];
            var train = patients[cut..];
            total.Add(FeatureSums.Accumulate(cohort.Schema, train));
            splits.Add((cohort.Hospitals[h].Hospital, train, test));
        }
        var pre = new Preprocessor(cohort.Schema, FeatureStatistics.FromSums(total), steps).Validated();
        var result = splits.Select(s => new HospitalDatasets(s.Hospital, pre.Transform(s.Train), pre.Transform(s.Test))).ToArray();
        return new FederatedDatasets(pre, result);
    }
}
