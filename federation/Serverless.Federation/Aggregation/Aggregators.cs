using System.Diagnostics;

namespace Serverless.Federation.Aggregation;

/// <summary>
/// Aggregation math as pure functions over flat update vectors (all of one length). Strategies
/// call these; tests call them directly.
/// </summary>
public static class Aggregators
{
    /// <summary>destination = sum_i w_i u_i / sum_i w_i.</summary>
    /// <exception cref="ArgumentException">no updates, lengths differ, or weights are not positive.</exception>
    public static void WeightedMean(IReadOnlyList<float[]> updates, ReadOnlySpan<double> weights, Span<float> destination)
    {
        Validate(updates, destination.Length);
        if (weights.Length != updates.Count) throw new ArgumentException("One weight per update.", nameof(weights));
        double total = 0;
        foreach (var w in weights) total += w > 0 && double.IsFinite(w) ? w : throw new ArgumentException("Weights must be positive and finite.", nameof(weights));
        var acc = new double[destination.Length];
        for (var k = 0; k < updates.Count; k++)
        {
            var u = updates[k];
            var w = weights[k] / total;
            for (var i = 0; i < acc.Length; i++) acc[i] += w * u[i];
        }
        for (var i = 0; i < acc.Length; i++) destination[i] = (float)acc[i];
    }

    /// <summary>Per coordinate, the median of the updates (mean of the two middle values for an even count).</summary>
    public static void CoordinateMedian(IReadOnlyList<float[]> updates, Span<float> destination)
    {
        Validate(updates, destination.Length);
        var column = new float[updates.Count];
        for (var i = 0; i < destination.Length; i++)
        {
            for (var k = 0; k < column.Length; k++) column[k] = updates[k][i];
            Array.Sort(column);
            var m = column.Length / 2;
            destination[i] = column.Length % 2 == 1 ? column[m] : 0.5f * (column[m - 1] + column[m]);
        }
    }

    /// <summary>Per coordinate, the mean after dropping floor(beta*n) values from each end.</summary>
    /// <exception cref="ArgumentOutOfRangeException">beta outside [0, 0.5).</exception>
    public static void TrimmedMean(IReadOnlyList<float[]> updates, double beta, Span<float> destination)
    {
        Validate(updates, destination.Length);
        if (!(beta >= 0 && beta < 0.5)) throw new ArgumentOutOfRangeException(nameof(beta));
        var cut = (int)Math.Floor(beta * updates.Count);
        var column = new float[updates.Count];
        for (var i = 0; i < destination.Length; i++)
        {
            for (var k = 0; k < column.Length; k++) column[k] = updates[k][i];
            Array.Sort(column);
            double s = 0;
            for (var k = cut; k < column.Length - cut; k++) s += column[k];
            destination[i] = (float)(s / (column.Length - 2 * cut));
        }
    }

    /// <summary>Krum scores: for each update, the sum of squared distances to its n - f - 2 nearest others (Blanchard et al. 2017).</summary>
    public static double[] KrumScores(IReadOnlyList<float[]> updates, int byzantine)
    {
        Validate(updates, updates.Count > 0 ? updates[0].Length : 0);
        var n = updates.Count;
        var neighbours = Math.Max(1, n - byzantine - 2);
        var dist = new double[n, n];
        for (var a = 0; a < n; a++)
            for (var b = a + 1; b < n; b++)
                dist[a, b] = dist[b, a] = SquaredDistance(updates[a], updates[b]);
        var scores = new double[n];
        var row = new double[n - 1];
        for (var a = 0; a < n; a++)
        {
            var k = 0;
            for (var b = 0; b < n; b++) if (b != a) row[k++] = dist[a, b];
            Array.Sort(row);
            double s = 0;
            for (var j = 0; j < Math.Min(neighbours, row.Length); j++) s += row[j];
            scores[a] = s;
        }
        return scores;
    }

    /// <summary>Multi-Krum: averages the <paramref name="select"/> updates with the lowest Krum scores (0 = n - f); returns their indices.</summary>
    /// <exception cref="ArgumentException">fewer than 2f + 3 updates (Krum's requirement).</exception>
    public static int[] MultiKrum(IReadOnlyList<float[]> updates, int byzantine, int select, Span<float> destination)
    {
        Validate(updates, destination.Length);
        if (byzantine < 0) throw new ArgumentOutOfRangeException(nameof(byzantine));
        if (updates.Count < 2 * byzantine + 3) throw new ArgumentException($"Multi-Krum with f = {byzantine} needs at least {2 * byzantine + 3} updates, got {updates.Count}.");
        var m = select <= 0 ? updates.Count - byzantine : Math.Min(select, updates.Count);
        var scores = KrumScores(updates, byzantine);
        var chosen = Enumerable.Range(0, updates.Count).OrderBy(i => scores[i]).ThenBy(i => i).Take(m).Order().ToArray();
        WeightedMean(chosen.Select(i => updates[i]).ToArray(), Enumerable.Repeat(1.0, chosen.Length).ToArray(), destination);
        return chosen;
    }

    /// <summary>L2 norm.</summary>
    public static double Norm(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (var x in v) s += (double)x * x;
        return Math.Sqrt(s);
    }

    /// <summary>Cosine similarity (0 when either vector is zero).</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Debug.Assert(a.Length == b.Length);
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        return na == 0 || nb == 0 ? 0 : dot / Math.Sqrt(na * nb);
    }

    /// <summary>Evaluation results combined by example count.</summary>
    public static EvaluationSummary WeightedEvaluation(IReadOnlyList<EvaluateResult> results)
    {
        var usable = results.Where(r => r.NumExamples > 0 && double.IsFinite(r.Loss)).ToArray();
        if (usable.Length == 0) return new EvaluationSummary(double.NaN, new Dictionary<string, double>(), 0);
        double total = usable.Sum(r => (double)r.NumExamples);
        var loss = usable.Sum(r => r.Loss * r.NumExamples) / total;
        var metrics = new Dictionary<string, double>();
        foreach (var key in usable.SelectMany(r => r.Metrics.Keys).Distinct())
        {
            var having = usable.Where(r => r.Metrics.ContainsKey(key)).ToArray();
            metrics[key] = having.Sum(r => r.Metrics[key] * r.NumExamples) / having.Sum(r => (double)r.NumExamples);
        }
        return new EvaluationSummary(loss, metrics, usable.Length);
    }

    private static double SquaredDistance(float[] a, float[] b)
    {
        double s = 0;
        for (var i = 0; i < a.Length; i++) { var d = (double)a[i] - b[i]; s += d * d; }
        return s;
    }

    private static void Validate(IReadOnlyList<float[]> updates, int length)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count == 0) throw new ArgumentException("No updates to aggregate.", nameof(updates));
        foreach (var u in updates)
            if (u is null || u.Length != length) throw new ArgumentException($"Every update must have {length} entries.", nameof(updates));
    }
}
