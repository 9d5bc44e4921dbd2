namespace Serverless.Fraud.Scoring;

/// <summary>One feature's population stability index over the current window.</summary>
public sealed record FeatureDrift(string Feature, double Psi, bool Alert);

/// <summary>PSI of every input feature against the reference, and which ones crossed the alert level.</summary>
public sealed record DriftReport(long Observations, double AlertLevel, IReadOnlyList<FeatureDrift> Features)
{
    public bool Alert => Features.Any(f => f.Alert);
    public IEnumerable<FeatureDrift> Alerts => Features.Where(f => f.Alert);
}

/// <summary>
/// A window's bin counts per feature (<see cref="PsiMonitor.Counts"/>): what one scorer instance saw, to keep across a
/// restart or to pool with other instances' windows over the same reference (counts add; shares do not).
/// </summary>
public sealed record DriftCounts(long Observations, long[][] Bins);

/// <summary>
/// Population stability index per input feature: PSI = Σ_bins (a − e)·ln(a / e), with e the reference
/// share and a the current share of a bin. Bins are the reference deciles (fewer where a feature has few
/// distinct values, e.g. one-hot flags); shares are floored at 1e-4 so an empty bin stays finite. The
/// conventional reading (Siddiqi, "Credit Risk Scorecards", 2006; Yurdakul 2018): below 0.1 stable,
/// 0.1–0.25 a moderate shift, above 0.25 a significant one, the default alert level. Not thread-safe.
/// </summary>
public sealed class PsiMonitor
{
    private const double Floor = 1e-4;
    private readonly string[] _names;
    private readonly float[][] _edges;      // upper edges per feature; a value goes to the first bin whose edge is >= it
    private readonly double[][] _expected;
    private readonly long[][] _counts;
    private long _observed;

    /// <param name="reference">Rows of <paramref name="names"/>.Count features each (row-major), e.g. the training inputs.</param>
    public PsiMonitor(IReadOnlyList<string> names, ReadOnlySpan<float> reference, int bins = 10, double alertLevel = 0.25, int minimumObservations = 500)
    {
        ArgumentNullException.ThrowIfNull(names);
        var f = names.Count;
        if (f == 0 || reference.Length == 0 || reference.Length % f != 0) throw new ArgumentException("reference must be a non-empty [rows, features] array");
        if (bins is < 2 or > 100) throw new ArgumentOutOfRangeException(nameof(bins), bins, "2..100");
        if (!(alertLevel > 0)) throw new ArgumentOutOfRangeException(nameof(alertLevel), alertLevel, "must be positive");
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumObservations, 1);
        AlertLevel = alertLevel;
        MinimumObservations = minimumObservations;
        _names = names.ToArray();
        var rows = reference.Length / f;
        _edges = new float[f][];
        _expected = new double[f][];
        _counts = new long[f][];
        var column = new float[rows];
        for (var j = 0; j < f; j++)
        {
            for (var r = 0; r < rows; r++) column[r] = reference[r * f + j];
            Array.Sort(column);
            var edges = new List<float>();
            for (var b = 1; b < bins; b++)
            {
                var q = column[Math.Clamp((int)((long)b * rows / bins) - 1, 0, rows - 1)]; // the b/bins quantile: values up to it fall in bins < b
                if (edges.Count == 0 || q > edges[^1]) edges.Add(q);
            }
            edges.Add(float.PositiveInfinity);
            _edges[j] = edges.ToArray();
            var expected = new double[edges.Count];
            foreach (var v in column) expected[BinOf(_edges[j], v)]++;
            for (var b = 0; b < expected.Length; b++) expected[b] = Math.Max(Floor, expected[b] / rows);
            _expected[j] = expected;
            _counts[j] = new long[edges.Count];
        }
    }

    public double AlertLevel { get; }

    /// <summary>Below this many observations the report never alerts (a small sample's PSI is noise).</summary>
    public int MinimumObservations { get; }

    public long Observations => _observed;

    /// <summary>Counts one input row (the features of the scored event).</summary>
    public void Observe(ReadOnlySpan<float> features)
    {
        if (features.Length != _names.Length) throw new ArgumentException($"expected {_names.Length} features", nameof(features));
        for (var j = 0; j < features.Length; j++) _counts[j][BinOf(_edges[j], features[j])]++;
        _observed++;
    }

    /// <summary>A copy of this window's counts.</summary>
    public DriftCounts Counts() => new(_observed, _counts.Select(c => c.ToArray()).ToArray());

    /// <summary>Adds a window counted against the same reference (this monitor's before a restart).</summary>
    /// <exception cref="ArgumentException">the counts do not fit this monitor's bins, or do not add up.</exception>
    public void Add(DriftCounts counts)
    {
        Validate(counts);
        for (var j = 0; j < _counts.Length; j++)
            for (var b = 0; b < _counts[j].Length; b++) _counts[j][b] += counts.Bins[j][b];
        _observed += counts.Observations;
    }

    /// <summary>PSI per feature over this window.</summary>
    public DriftReport Report() => Report([]);

    /// <summary>PSI per feature over this window pooled with <paramref name="others"/> (other instances' windows), which are checked as in <see cref="Add"/>.</summary>
    public DriftReport Report(IReadOnlyList<DriftCounts> others)
    {
        ArgumentNullException.ThrowIfNull(others);
        foreach (var o in others) Validate(o);
        var observed = _observed + others.Sum(o => o.Observations);
        var result = new FeatureDrift[_names.Length];
        for (var j = 0; j < _names.Length; j++)
        {
            double psi = 0;
            if (observed > 0)
            {
                for (var b = 0; b < _counts[j].Length; b++)
                {
                    var count = _counts[j][b];
                    foreach (var o in others) count += o.Bins[j][b];
                    var a = Math.Max(Floor, (double)count / observed);
                    var e = _expected[j][b];
                    psi += (a - e) * Math.Log(a / e);
                }
            }
            result[j] = new FeatureDrift(_names[j], psi, observed >= MinimumObservations && psi > AlertLevel);
        }
        return new DriftReport(observed, AlertLevel, result);
    }

    /// <summary>True when <paramref name="counts"/> were counted against bins like this monitor's and add up (<see cref="Add"/> would take them).</summary>
    public bool Fits(DriftCounts? counts) => Problem(counts) is null;

    private void Validate(DriftCounts counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (Problem(counts) is { } problem) throw new ArgumentException(problem, nameof(counts));
    }

    private string? Problem(DriftCounts? counts)
    {
        if (counts?.Bins is null || counts.Bins.Length != _counts.Length) return $"drift counts must have {_counts.Length} features";
        if (counts.Observations < 0) return "drift counts must not be negative";
        for (var j = 0; j < _counts.Length; j++)
        {
            var row = counts.Bins[j];
            if (row is null || row.Length != _counts[j].Length) return $"drift counts of feature {j} must have {_counts[j].Length} bins";
            long total = 0;
            foreach (var c in row)
            {
                if (c < 0) return "drift counts must not be negative";
                total += c;
            }
            if (total != counts.Observations) return $"drift counts of feature {j} do not add up to the observations";
        }
        return null;
    }

    /// <summary>Starts a new window (e.g. hourly), keeping the reference.</summary>
    public void Reset()
    {
        foreach (var c in _counts) Array.Clear(c);
        _observed = 0;
    }

    private static int BinOf(float[] edges, float v)
    {
        if (float.IsNaN(v)) return edges.Length - 1;
        var lo = 0;
        var hi = edges.Length - 1;
        while (lo < hi)
        {
            var mid = (lo + hi) >> 1;
            if (v <= edges[mid]) hi = mid; else lo = mid + 1;
        }
        return lo;
    }
}
