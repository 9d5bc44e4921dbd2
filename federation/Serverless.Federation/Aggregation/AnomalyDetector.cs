namespace Serverless.Federation.Aggregation;

/// <summary>Thresholds of <see cref="AnomalyDetector"/>.</summary>
/// <param name="NormZThreshold">Flag when |robust z| of the update's L2 norm exceeds this (median/MAD z-score).</param>
/// <param name="MinCosine">Flag when the cosine to the coordinate-wise median of all updates is below this.</param>
/// <param name="Exclude">Exclude flagged updates (otherwise only report them).</param>
public sealed record AnomalyOptions(double NormZThreshold = 3.5, double MinCosine = 0.0, bool Exclude = true);

/// <summary>One update's score.</summary>
public sealed record AnomalyScore(int Index, double Norm, double NormZ, double Cosine, bool Flagged, string? Reason);

/// <summary>
/// Scores updates for poisoning when they are visible: a robust z-score of the L2 norm (median and
/// median absolute deviation, so the attackers cannot drag the baseline) catches scaling / model
/// replacement and loud noise; the cosine to the coordinate-wise median catches sign flipping,
/// label flipping and direction-free noise.
/// </summary>
public static class AnomalyDetector
{
    /// <summary>Scores every update against the others.</summary>
    /// <exception cref="ArgumentException">fewer than three updates (no meaningful baseline) or lengths differ.</exception>
    public static AnomalyScore[] Score(IReadOnlyList<float[]> updates, AnomalyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (updates.Count < 3) throw new ArgumentException("Anomaly scoring needs at least three updates.", nameof(updates));
        var length = updates[0].Length;
        var median = new float[length];
        Aggregators.CoordinateMedian(updates, median);
        var norms = updates.Select(u => Aggregators.Norm(u)).ToArray();
        var medNorm = Median(norms);
        var mad = Median(norms.Select(n => Math.Abs(n - medNorm)).ToArray());
        // Floor the spread at 5 % of the median norm so identical honest updates do not make every tiny difference an outlier.
        var spread = Math.Max(1.4826 * mad, 0.05 * medNorm + 1e-12);
        var scores = new AnomalyScore[updates.Count];
        for (var i = 0; i < updates.Count; i++)
        {
            var z = (norms[i] - medNorm) / spread;
            var cos = Aggregators.Cosine(updates[i], median);
            string? reason = null;
            if (Math.Abs(z) > options.NormZThreshold)
                reason = $"update norm {norms[i]:G4} is {z:F1} robust standard deviations from the median norm {medNorm:G4}";
            else if (cos < options.MinCosine)
                reason = $"cosine {cos:F3} to the coordinate-wise median update is below {options.MinCosine:F3}";
            scores[i] = new AnomalyScore(i, norms[i], z, cos, reason is not null, reason);
        }
        return scores;
    }

    private static double Median(double[] values)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        var m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : 0.5 * (sorted[m - 1] + sorted[m]);
    }
}
