namespace Serverless.Federation.Aggregation;

/// <summary>Thresholds of <see cref="AnomalyDetector"/>.</summary>
/// <param name="NormZThreshold">Flag when |robust z| of the update's L2 norm exceeds this (median/MAD z-score).</param>
/// <param name="MinCosine">Flag when the median cosine similarity to the other updates is below this.</param>
/// <param name="Exclude">Exclude flagged updates (otherwise only report them).</param>
/// <param name="CosineZThreshold">...and only when that cosine is also this many robust standard deviations below the median of all updates' cosines (keeps honest-but-different non-IID clients in).</param>
public sealed record AnomalyOptions(double NormZThreshold = 3.5, double MinCosine = 0.0, bool Exclude = true, double CosineZThreshold = 1.5);

/// <summary>One update's score: its norm, the norm's robust z-score, and the median of its cosines to the other updates.</summary>
public sealed record AnomalyScore(int Index, double Norm, double NormZ, double Cosine, bool Flagged, string? Reason);

/// <summary>
/// Scores updates for poisoning when they are visible: a robust z-score of the L2 norm (median and
/// median absolute deviation, so the attackers cannot drag the baseline) catches scaling / model
/// replacement and loud noise; the median of an update's cosine similarities to every other update
/// (robust to a minority of attackers, unlike the cosine to the mean) catches sign flipping, label
/// flipping and direction-free noise. O(n^2 P): meant for tens of visible updates per round.
/// </summary>
public static class AnomalyDetector
{
    /// <summary>Scores every update against the others.</summary>
    /// <exception cref="ArgumentException">fewer than three updates (no meaningful baseline) or lengths differ.</exception>
    public static AnomalyScore[] Score(IReadOnlyList<float[]> updates, AnomalyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (updates.Count < 3) throw new ArgumentException("Anomaly scoring needs at least three updates.", nameof(updates));
        var n = updates.Count;
        var cosines = new double[n, n];
        for (var a = 0; a < n; a++)
            for (var b = a + 1; b < n; b++)
                cosines[a, b] = cosines[b, a] = Aggregators.Cosine(updates[a], updates[b]);
        var norms = updates.Select(u => Aggregators.Norm(u)).ToArray();
        var medNorm = Median(norms);
        var mad = Median(norms.Select(n => Math.Abs(n - medNorm)).ToArray());
        // Floor the spread at 5 % of the median norm so identical honest updates do not make every tiny difference an outlier.
        var spread = Math.Max(1.4826 * mad, 0.05 * medNorm + 1e-12);
        var medianCos = new double[n];
        for (var i = 0; i < n; i++)
        {
            var others = new double[n - 1];
            for (int j = 0, k = 0; j < n; j++) if (j != i) others[k++] = cosines[i, j];
            medianCos[i] = Median(others);
        }
        var cosCentre = Median(medianCos);
        var cosSpread = Math.Max(1.4826 * Median(medianCos.Select(c => Math.Abs(c - cosCentre)).ToArray()), 0.02);
        var scores = new AnomalyScore[updates.Count];
        for (var i = 0; i < updates.Count; i++)
        {
            var z = (norms[i] - medNorm) / spread;
            var cos = medianCos[i];
            var cosZ = (cos - cosCentre) / cosSpread;
            string? reason = null;
            if (Math.Abs(z) > options.NormZThreshold)
                reason = $"update norm {norms[i]:G4} is {z:F1} robust standard deviations from the median norm {medNorm:G4}";
            else if (cos < options.MinCosine && cosZ < -options.CosineZThreshold)
                reason = $"median cosine {cos:F3} to the other updates is below {options.MinCosine:F3} and {-cosZ:F1} robust standard deviations below the others'";
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
