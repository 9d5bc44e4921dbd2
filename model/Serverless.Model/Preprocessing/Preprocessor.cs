namespace Serverless.Model.Preprocessing;

/// <summary>
/// The fitted preprocessing pipeline (small and serializable): schema, numeric statistics and window length.
/// <see cref="Transform"/> imputes a missing visit value with the patient's previous observation of it when
/// <see cref="CarryForward"/> is on (temporal alignment: a jump to the population mean between two visits
/// would look like a trajectory), otherwise and for values never observed before with the mean; caps z-scores at
/// <see cref="FeatureStatistics.OutlierZ"/>, standardizes, one-hot encodes categorical columns (a missing
/// category is all zeros), repeats static columns at every visit, keeps the most recent <see cref="Steps"/>
/// visits and pads the rest with a mask.
/// </summary>
public sealed record Preprocessor(FeatureSchema Schema, FeatureStatistics Statistics, int Steps, bool CarryForward = true)
{
    /// <summary>Fits statistics on the given patients (a central fit; federations use <see cref="FeatureSums"/>).</summary>
    public static Preprocessor Fit(FeatureSchema schema, IEnumerable<PatientRecord> patients, int steps, double outlierZ = FeatureStatistics.DefaultOutlierZ) =>
        new Preprocessor(schema, FeatureStatistics.FromSums(FeatureSums.Accumulate(schema, patients), outlierZ), steps).Validated();

    /// <summary>Model input width per visit.</summary>
    public int Features => FeatureNames().Count;

    /// <summary>Names of the model's input columns in order (e.g. "age", "sex=male", "hba1c").</summary>
    public IReadOnlyList<string> FeatureNames()
    {
        var names = new List<string>();
        foreach (var spec in Schema.StaticFeatures.Concat(Schema.VisitFeatures))
        {
            if (spec.Kind == FeatureKind.Numeric) names.Add(spec.Name);
            else foreach (var c in spec.Categories!) names.Add($"{spec.Name}={c}");
        }
        return names;
    }

    public Preprocessor Validated()
    {
        ArgumentNullException.ThrowIfNull(Schema);
        ArgumentNullException.ThrowIfNull(Statistics);
        if (Steps is < 1 or > 4096) throw new InvalidDataException($"preprocessor: steps {Steps} outside 1..4096");
        Statistics.Validated();
        if (Schema.Classes < 2) throw new InvalidDataException("preprocessor: the schema needs at least two classes");
        foreach (var spec in Schema.StaticFeatures.Concat(Schema.VisitFeatures))
            if (spec.Kind == FeatureKind.Categorical && spec.CategoryCount < 1)
                throw new InvalidDataException($"preprocessor: categorical column {spec.Name} has no categories");
        var numeric = Schema.NumericColumns();
        if (numeric.Count != Statistics.Columns.Count)
            throw new InvalidDataException($"preprocessor: schema has {numeric.Count} numeric columns, statistics {Statistics.Columns.Count}");
        for (var i = 0; i < numeric.Count; i++)
            if (numeric[i] != Statistics.Columns[i])
                throw new InvalidDataException($"preprocessor: statistics column {i} is '{Statistics.Columns[i]}', schema says '{numeric[i]}'");
        return this;
    }

    /// <summary>Turns patients into padded, masked, standardized sequences.</summary>
    public SequenceDataset Transform(IReadOnlyList<PatientRecord> patients)
    {
        ArgumentNullException.ThrowIfNull(patients);
        Validated();
        var f = Features;
        var values = new float[patients.Count * Steps * f];
        var mask = new float[patients.Count * Steps];
        var labels = new int[patients.Count];
        var staticRow = new float[f];
        var lastSeen = new double[Schema.VisitFeatures.Count];
        var staticNumeric = 0;
        foreach (var s in Schema.StaticFeatures) if (s.Kind == FeatureKind.Numeric) staticNumeric++;

        for (var p = 0; p < patients.Count; p++)
        {
            var patient = patients[p];
            if (patient.Static.Length != Schema.StaticFeatures.Count)
                throw new ArgumentException($"patient {patient.PatientId}: {patient.Static.Length} static values, schema has {Schema.StaticFeatures.Count}");
            if ((uint)patient.Label >= (uint)Schema.Classes)
                throw new ArgumentException($"patient {patient.PatientId}: label {patient.Label} outside 0..{Schema.Classes - 1}");
            if (patient.Visits.Count == 0) throw new ArgumentException($"patient {patient.PatientId} has no visits");
            labels[p] = patient.Label;

            Array.Clear(staticRow);
            var col = 0;
            var stat = 0;
            for (var i = 0; i < Schema.StaticFeatures.Count; i++)
                col = Encode(Schema.StaticFeatures[i], patient.Static[i], staticRow, col, ref stat);
            var staticWidth = col;

            var first = Math.Max(0, patient.Visits.Count - Steps);
            lastSeen.AsSpan().Fill(double.NaN);
            for (var t = 0; t < first; t++) Remember(patient.Visits[t], lastSeen);
            for (var t = 0; t < Math.Min(Steps, patient.Visits.Count); t++)
            {
                var visit = patient.Visits[first + t];
                if (visit.Length != Schema.VisitFeatures.Count)
                    throw new ArgumentException($"patient {patient.PatientId}: a visit has {visit.Length} values, schema has {Schema.VisitFeatures.Count}");
                if (CarryForward)
                {
                    Remember(visit, lastSeen);
                    visit = lastSeen;
                }
                var row = values.AsSpan((p * Steps + t) * f, f);
                staticRow.AsSpan(0, staticWidth).CopyTo(row);
                var c = staticWidth;
                var s = staticNumeric;
                for (var i = 0; i < Schema.VisitFeatures.Count; i++)
                    c = Encode(Schema.VisitFeatures[i], visit[i], row, c, ref s);
                mask[p * Steps + t] = 1f;
            }
        }
        return new SequenceDataset(patients.Count, Steps, f, Schema.Classes, values, mask, labels);
    }

    /// <summary>Updates the last observed value of each visit column (NaN until first observed).</summary>
    private static void Remember(double[] visit, double[] lastSeen)
    {
        if (visit.Length != lastSeen.Length) return; // reported by the caller
        for (var i = 0; i < visit.Length; i++) if (!double.IsNaN(visit[i])) lastSeen[i] = visit[i];
    }

    private int Encode(FeatureSpec spec, double raw, Span<float> row, int col, ref int statIndex)
    {
        if (spec.Kind == FeatureKind.Numeric)
        {
            var mean = Statistics.Means[statIndex];
            var sd = Statistics.StandardDeviations[statIndex];
            statIndex++;
            double z;
            if (double.IsNaN(raw) || sd <= 0) z = 0; // mean imputation: the mean standardizes to 0
            else z = Math.Clamp((raw - mean) / sd, -Statistics.OutlierZ, Statistics.OutlierZ);
            row[col] = (float)z;
            return col + 1;
        }
        var k = spec.CategoryCount;
        if (!double.IsNaN(raw))
        {
            var index = (int)raw;
            if (index != raw || (uint)index >= (uint)k)
                throw new ArgumentException($"column {spec.Name}: category index {raw} outside 0..{k - 1}");
            row[col + index] = 1f;
        }
        return col + k;
    }

    public string ToJson() => JsonSerializer.Serialize(this);

    public static Preprocessor FromJson(string json)
    {
        var p = JsonSerializer.Deserialize<Preprocessor>(json) ?? throw new InvalidDataException("preprocessor: empty JSON");
        if (p.Schema?.StaticFeatures is null || p.Schema.VisitFeatures is null || p.Schema.ClassNames is null)
            throw new InvalidDataException("preprocessor: schema is incomplete");
        return p.Validated();
    }
}
