namespace Serverless.Model.Preprocessing;

/// <summary>
/// Per-column counts, sums and sums of squares of the observed (non-missing) numeric values of one
/// client's patients. Sums of several clients add up (<see cref="Add"/>), so a federation can compute
/// them by secure aggregation of <see cref="ToVector"/> and turn the total into
/// <see cref="FeatureStatistics"/> without pooling records. Static columns count once per patient,
/// visit columns once per visit.
/// </summary>
public sealed class FeatureSums
{
    public FeatureSums(IReadOnlyList<string> columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        Columns = columns.ToArray();
        Counts = new double[Columns.Count];
        Sums = new double[Columns.Count];
        SumSquares = new double[Columns.Count];
    }

    public IReadOnlyList<string> Columns { get; }
    public double[] Counts { get; }
    public double[] Sums { get; }
    public double[] SumSquares { get; }

    /// <summary>Length of <see cref="ToVector"/>: three entries per column.</summary>
    public int VectorLength => 3 * Columns.Count;

    /// <summary>Sums of the numeric columns of <paramref name="patients"/> under <paramref name="schema"/>.</summary>
    public static FeatureSums Accumulate(FeatureSchema schema, IEnumerable<PatientRecord> patients)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(patients);
        var sums = new FeatureSums(schema.NumericColumns());
        foreach (var p in patients) sums.Add(schema, p);
        return sums;
    }

    /// <summary>Adds one patient's observed values.</summary>
    public void Add(FeatureSchema schema, PatientRecord patient)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(patient);
        if (patient.Static.Length != schema.StaticFeatures.Count)
            throw new ArgumentException($"patient {patient.PatientId} has {patient.Static.Length} static values, schema has {schema.StaticFeatures.Count}");
        var column = 0;
        for (var i = 0; i < schema.StaticFeatures.Count; i++)
        {
            if (schema.StaticFeatures[i].Kind != FeatureKind.Numeric) continue;
            Observe(column++, patient.Static[i]);
        }
        var first = column;
        foreach (var visit in patient.Visits)
        {
            if (visit.Length != schema.VisitFeatures.Count)
                throw new ArgumentException($"patient {patient.PatientId} has a visit with {visit.Length} values, schema has {schema.VisitFeatures.Count}");
            column = first;
            for (var i = 0; i < schema.VisitFeatures.Count; i++)
            {
                if (schema.VisitFeatures[i].Kind != FeatureKind.Numeric) continue;
                Observe(column++, visit[i]);
            }
        }
    }

    private void Observe(int column, double value)
    {
        if (double.IsNaN(value)) return;
        Counts[column] += 1;
        Sums[column] += value;
        SumSquares[column] += value * value;
    }

    /// <summary>Adds another client's sums (same columns) into this one.</summary>
    public void Add(FeatureSums other)
    {
        ArgumentNullException.ThrowIfNull(other);
        CheckSameColumns(other.Columns);
        for (var i = 0; i < Columns.Count; i++)
        {
            Counts[i] += other.Counts[i];
            Sums[i] += other.Sums[i];
            SumSquares[i] += other.SumSquares[i];
        }
    }

    /// <summary>[counts | sums | sums of squares], the vector a federation secure-aggregates.</summary>
    public double[] ToVector()
    {
        var n = Columns.Count;
        var v = new double[3 * n];
        Counts.CopyTo(v, 0);
        Sums.CopyTo(v, n);
        SumSquares.CopyTo(v, 2 * n);
        return v;
    }

    /// <summary>Inverse of <see cref="ToVector"/> (e.g. on the aggregated vector).</summary>
    public static FeatureSums FromVector(IReadOnlyList<string> columns, ReadOnlySpan<double> vector)
    {
        var sums = new FeatureSums(columns);
        var n = sums.Columns.Count;
        if (vector.Length != 3 * n) throw new ArgumentException($"vector has {vector.Length} entries, expected {3 * n}", nameof(vector));
        for (var i = 0; i < n; i++)
        {
            if (!double.IsFinite(vector[i]) || vector[i] < 0) throw new ArgumentException($"count of {sums.Columns[i]} is {vector[i]}", nameof(vector));
            if (!double.IsFinite(vector[n + i]) || !double.IsFinite(vector[2 * n + i]) || vector[2 * n + i] < 0)
                throw new ArgumentException($"sums of {sums.Columns[i]} are not valid", nameof(vector));
        }
        vector[..n].CopyTo(sums.Counts);
        vector.Slice(n, n).CopyTo(sums.Sums);
        vector.Slice(2 * n, n).CopyTo(sums.SumSquares);
        return sums;
    }

    internal void CheckSameColumns(IReadOnlyList<string> columns)
    {
        if (columns.Count != Columns.Count) throw new ArgumentException("column lists differ in length");
        for (var i = 0; i < columns.Count; i++)
            if (!string.Equals(columns[i], Columns[i], StringComparison.Ordinal))
                throw new ArgumentException($"column {i} is '{columns[i]}', expected '{Columns[i]}'");
    }
}
