using Serverless.Model.Preprocessing;

namespace Serverless.Federation.Rounds;

/// <summary>A public bound of one numeric column: values are clipped to [Lower, Upper] before they enter the statistics.</summary>
public sealed record StatisticsRange(double Lower, double Upper)
{
    /// <summary>Finite with Lower &lt; Upper.</summary>
    public bool IsValid => double.IsFinite(Lower) && double.IsFinite(Upper) && Lower < Upper;
}

/// <summary>
/// The Gaussian mechanism of the statistics stage (decision 0023; issue 20). Each patient contributes, per numeric column
/// with at least one observed value, a count of 1, the mean over its observed values of u and the mean of u^2, where
/// u = 2 (clip(x, Lower, Upper) - Lower) / (Upper - Lower) - 1 lies in [-1, 1]. Adding or removing one patient therefore
/// moves each of the 3 d entries by at most 1: the L2 sensitivity is sqrt(3 d), whatever the data. Each client adds
/// Gaussian noise of std z * sqrt(3 d) to its own vector before masking (<see cref="GaussianMechanism.DistributedStd"/> with
/// t survivors of which t - 1 may collude with the server: one honest share must carry the whole variance), so a client's
/// noised vector is already the Gaussian mechanism (Dwork and Roth 2014, Theorem A.1; in RDP, order alpha costs
/// alpha / (2 z^2): Mironov 2017, Table II, the q = 1 case of SampledGaussianRdp) for its patients, and everything the server, or any coalition of the other
/// clients, sees is post-processing of it. The release is charged to the federation's accountant as one step at q = 1.
/// </summary>
/// <param name="Ranges">The public range of each column, in the order of the plan's statistics columns.</param>
/// <param name="NoiseMultiplier">z: noise std over the L2 sensitivity.</param>
public sealed record StatisticsMechanism(StatisticsRange[] Ranges, double NoiseMultiplier)
{
    /// <summary>
    /// Public ranges of the generator's (and cohort CSV) numeric columns: adult patients and physiologically possible
    /// measurements (clinical reference limits, not the data), wide enough that only unit slips and typos are clipped.
    /// </summary>
    public static IReadOnlyDictionary<string, StatisticsRange> DefaultRanges { get; } = new Dictionary<string, StatisticsRange>(StringComparer.Ordinal)
    {
        [CohortGenerator.Age] = new(18, 100),
        [CohortGenerator.Hypertension] = new(0, 1),
        [CohortGenerator.Diabetes] = new(0, 1),
        [CohortGenerator.Bmi] = new(10, 70),
        [CohortGenerator.Systolic] = new(60, 250),
        [CohortGenerator.Diastolic] = new(30, 150),
        [CohortGenerator.Glucose] = new(40, 500),
        [CohortGenerator.HbA1c] = new(3, 18),
        [CohortGenerator.Cholesterol] = new(80, 400),
        [CohortGenerator.HeartRate] = new(30, 200),
    };

    /// <summary>Entries per column: count, sum of u, sum of u^2.</summary>
    public const int EntriesPerColumn = 3;

    /// <summary>L2 sensitivity of the contribution vector to adding or removing one patient: sqrt(3 d).</summary>
    public double L2Sensitivity => Math.Sqrt(EntriesPerColumn * Ranges.Length);

    /// <summary>Std of the noise one honest share carries: z * sqrt(3 d).</summary>
    public double TargetStd => NoiseMultiplier * L2Sensitivity;

    /// <summary>
    /// One client's noise std in a stage of threshold <paramref name="threshold"/>: the sum holds at least t shares, and up to
    /// t - 1 clients may collude with the server and subtract theirs, so each client adds the whole <see cref="TargetStd"/>.
    /// The client computes this itself; the server chooses neither the std nor the number of colluders it is sized for.
    /// </summary>
    public double ClientStd(int threshold)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        return GaussianMechanism.DistributedStd(NoiseMultiplier, L2Sensitivity, minSurvivors: threshold, colluding: threshold - 1);
    }

    /// <summary>The mechanism of a configuration over <paramref name="columns"/>; null with privacy off (exact sums, as before).</summary>
    /// <exception cref="ArgumentException">privacy is on and a column has no valid range (configured or default).</exception>
    public static StatisticsMechanism? Of(FederationPrivacy privacy, IReadOnlyList<string> columns)
    {
        ArgumentNullException.ThrowIfNull(privacy);
        ArgumentNullException.ThrowIfNull(columns);
        if (!privacy.Enabled) return null;
        var missing = MissingRanges(privacy, columns);
        if (missing.Count > 0) throw new ArgumentException($"numeric columns without a public range: {string.Join(", ", missing)}", nameof(columns));
        return new StatisticsMechanism(columns.Select(c => RangeOf(privacy, c)!).ToArray(), privacy.StatisticsNoiseMultiplier).Validated();
    }

    /// <summary>Columns that have neither a valid configured range nor a default one.</summary>
    public static IReadOnlyList<string> MissingRanges(FederationPrivacy privacy, IReadOnlyList<string> columns)
    {
        ArgumentNullException.ThrowIfNull(privacy);
        ArgumentNullException.ThrowIfNull(columns);
        return columns.Where(c => RangeOf(privacy, c) is not { IsValid: true }).ToArray();
    }

    private static StatisticsRange? RangeOf(FederationPrivacy privacy, string column) =>
        privacy.StatisticsRanges is { } configured && configured.TryGetValue(column, out var r) ? r : DefaultRanges.GetValueOrDefault(column);

    /// <summary>Checks the ranges and z (after deserializing a task, before any patient value is touched).</summary>
    /// <exception cref="InvalidDataException">a range is not finite or empty, or z is not positive.</exception>
    public StatisticsMechanism Validated()
    {
        if (Ranges is null || Ranges.Length == 0) throw new InvalidDataException("the statistics mechanism names no column ranges");
        foreach (var r in Ranges)
            if (r is null || !r.IsValid) throw new InvalidDataException("a statistics range is not finite with lower < upper");
        if (!(NoiseMultiplier > 0) || !double.IsFinite(NoiseMultiplier)) throw new InvalidDataException("the statistics noise multiplier is not a positive number");
        return this;
    }

    /// <summary>
    /// The bounded contributions of <paramref name="patients"/>, before noise: [counts | sums of u | sums of u^2], each
    /// patient counting at most once per column (the mean of its observed visit values, for a visit column).
    /// </summary>
    public double[] Contributions(FeatureSchema schema, IEnumerable<PatientRecord> patients)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(patients);
        var statics = schema.StaticFeatures.Select((f, i) => (f, i)).Where(x => x.f.Kind == FeatureKind.Numeric).Select(x => x.i).ToArray();
        var visits = schema.VisitFeatures.Select((f, i) => (f, i)).Where(x => x.f.Kind == FeatureKind.Numeric).Select(x => x.i).ToArray();
        var d = statics.Length + visits.Length;
        if (d != Ranges.Length) throw new ArgumentException($"The schema has {d} numeric columns, the mechanism {Ranges.Length} ranges.", nameof(schema));
        var vector = new double[EntriesPerColumn * d];
        var n = new int[d];
        var u = new double[d];
        var u2 = new double[d];
        foreach (var p in patients)
        {
            ArgumentNullException.ThrowIfNull(p);
            if (p.Static.Length != schema.StaticFeatures.Count) throw new ArgumentException("A patient's static values do not match the schema.", nameof(patients));
            Array.Clear(n);
            Array.Clear(u);
            Array.Clear(u2);
            for (var c = 0; c < statics.Length; c++) Observe(c, p.Static[statics[c]]);
            foreach (var visit in p.Visits)
            {
                if (visit.Length != schema.VisitFeatures.Count) throw new ArgumentException("A patient's visit values do not match the schema.", nameof(patients));
                for (var c = 0; c < visits.Length; c++) Observe(statics.Length + c, visit[visits[c]]);
            }
            for (var c = 0; c < d; c++)
            {
                if (n[c] == 0) continue;
                vector[c] += 1;
                vector[d + c] += u[c] / n[c];
                vector[2 * d + c] += u2[c] / n[c];
            }
        }
        return vector;

        void Observe(int column, double value)
        {
            if (double.IsNaN(value)) return;
            var x = Normalized(column, value);
            n[column]++;
            u[column] += x;
            u2[column] += x * x;
        }
    }

    /// <summary>The value mapped into [-1, 1] after clipping to the column's range (infinities clip to the bounds).</summary>
    public double Normalized(int column, double value)
    {
        var r = Ranges[column];
        var clipped = Math.Clamp(value, r.Lower, r.Upper);
        return Math.Clamp(2 * (clipped - r.Lower) / (r.Upper - r.Lower) - 1, -1, 1);
    }

    /// <summary>
    /// A client's statistics-stage input: its bounded contributions plus its noise share of std <see cref="ClientStd"/>,
    /// drawn from <paramref name="noise"/> (<see cref="CryptoRandom"/> in production), encoded for the ring.
    /// </summary>
    public uint[] ClientInput(FeatureSchema schema, IEnumerable<PatientRecord> patients, int threshold, int fractionBits, Random noise)
    {
        ArgumentNullException.ThrowIfNull(noise);
        var vector = Contributions(schema, patients);
        GaussianMechanism.AddGaussianNoise(vector.AsSpan(), ClientStd(threshold), noise);
        return StatisticsEncoding.Encode(vector, fractionBits);
    }

    /// <summary>
    /// The federation's statistics from the noised sum (post-processing only: no patient value is read). Per column,
    /// mean = S / C and E[u^2] = Q / C, each clamped to what bounded values allow; a count below 1 (no one observed, or noise
    /// swamped it) gives the range's midpoint and the sd of a uniform over it. The variance (in u) is floored at the standard
    /// error the noise gives it, <paramref name="sumNoiseStd"/> * sqrt(1 + 4 mean^2) / C (and at 10^-6): where the noise
    /// swamps the spread, the column is scaled down rather than blown up by a near-zero sd (which would send every value to
    /// the outlier cap).
    /// </summary>
    /// <param name="columns">Column names, in the ranges' order.</param>
    /// <param name="noisySum">The decoded sum [counts | sums of u | sums of u^2].</param>
    /// <param name="outlierZ">The preprocessor's outlier cap.</param>
    /// <param name="sumNoiseStd">Std of the noise on each entry of the sum (0 = exact sums).</param>
    public FeatureStatistics Release(IReadOnlyList<string> columns, ReadOnlySpan<double> noisySum, double outlierZ = FeatureStatistics.DefaultOutlierZ, double sumNoiseStd = 0)
    {
        if (!(sumNoiseStd >= 0) || !double.IsFinite(sumNoiseStd)) throw new ArgumentOutOfRangeException(nameof(sumNoiseStd));
        ArgumentNullException.ThrowIfNull(columns);
        var d = Ranges.Length;
        if (columns.Count != d) throw new ArgumentException($"{columns.Count} columns for {d} ranges.", nameof(columns));
        if (noisySum.Length != EntriesPerColumn * d) throw new ArgumentException($"Expected {EntriesPerColumn * d} sums, got {noisySum.Length}.", nameof(noisySum));
        var means = new double[d];
        var sds = new double[d];
        var counts = new double[d];
        for (var c = 0; c < d; c++)
        {
            var r = Ranges[c];
            var half = (r.Upper - r.Lower) / 2;
            var mid = r.Lower + half;
            var count = noisySum[c];
            if (!double.IsFinite(count) || count < 1)
            {
                means[c] = mid;
                sds[c] = half / Math.Sqrt(3);
                continue;
            }
            var mean = Math.Clamp(noisySum[d + c] / count, -1, 1);
            var second = Math.Clamp(noisySum[2 * d + c] / count, 0, 1);
            var variance = Math.Max(second - mean * mean, Math.Max(1e-6, sumNoiseStd * Math.Sqrt(1 + 4 * mean * mean) / count));
            means[c] = mid + mean * half;
            sds[c] = Math.Sqrt(variance) * half;
            counts[c] = Math.Round(count);
        }
        return new FeatureStatistics(columns.ToArray(), means, sds, counts, outlierZ).Validated();
    }
}
