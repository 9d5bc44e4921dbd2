namespace Serverless.Model.Preprocessing;

/// <summary>
/// Fitted statistics of the numeric columns: mean (used for imputation and centring), standard deviation
/// (population, for scaling), and the z-score at which outliers are capped. Small and serializable.
/// </summary>
public sealed record FeatureStatistics(
    IReadOnlyList<string> Columns,
    IReadOnlyList<double> Means,
    IReadOnlyList<double> StandardDeviations,
    IReadOnlyList<double> Counts,
    double OutlierZ)
{
    public const double DefaultOutlierZ = 3.0;

    /// <summary>Statistics from (possibly secure-aggregated) sums. A column with no observation has mean 0, sd 1.</summary>
    public static FeatureStatistics FromSums(FeatureSums sums, double outlierZ = DefaultOutlierZ)
    {
        ArgumentNullException.ThrowIfNull(sums);
        if (!(outlierZ > 0)) throw new ArgumentOutOfRangeException(nameof(outlierZ), outlierZ, "must be positive");
        var n = sums.Columns.Count;
        var means = new double[n];
        var sds = new double[n];
        for (var i = 0; i < n; i++)
        {
            var count = sums.Counts[i];
            if (count <= 0) { means[i] = 0; sds[i] = 1; continue; }
            var mean = sums.Sums[i] / count;
            // E[x^2] - mean^2 can go slightly negative by rounding; clamp before the root.
            var variance = Math.Max(0, sums.SumSquares[i] / count - mean * mean);
            means[i] = mean;
            sds[i] = Math.Sqrt(variance);
        }
        return new FeatureStatistics(sums.Columns.ToArray(), means, sds, sums.Counts.ToArray(), outlierZ).Validated();
    }

    /// <summary>Checks shapes and values (use after deserializing).</summary>
    public FeatureStatistics Validated()
    {
        if (Columns is null || Means is null || StandardDeviations is null || Counts is null)
            throw new InvalidDataException("feature statistics: a list is missing");
        var n = Columns.Count;
        if (Means.Count != n || StandardDeviations.Count != n || Counts.Count != n)
            throw new InvalidDataException("feature statistics: lists differ in length");
        if (!(OutlierZ > 0) || !double.IsFinite(OutlierZ)) throw new InvalidDataException($"feature statistics: outlier z {OutlierZ} is not positive");
        for (var i = 0; i < n; i++)
        {
            if (string.IsNullOrEmpty(Columns[i])) throw new InvalidDataException($"feature statistics: column {i} has no name");
            if (!double.IsFinite(Means[i])) throw new InvalidDataException($"feature statistics: mean of {Columns[i]} is not finite");
            if (!double.IsFinite(StandardDeviations[i]) || StandardDeviations[i] < 0)
                throw new InvalidDataException($"feature statistics: sd of {Columns[i]} is not a finite non-negative number");
            if (!double.IsFinite(Counts[i]) || Counts[i] < 0) throw new InvalidDataException($"feature statistics: count of {Columns[i]} is invalid");
        }
        return this;
    }

    public string ToJson() => JsonSerializer.Serialize(this);

    public static FeatureStatistics FromJson(string json) =>
        (JsonSerializer.Deserialize<FeatureStatistics>(json) ?? throw new InvalidDataException("feature statistics: empty JSON")).Validated();
}
