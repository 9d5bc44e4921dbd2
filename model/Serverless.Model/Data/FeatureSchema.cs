namespace Serverless.Model.Data;

/// <summary>Whether a raw column holds a number or a category index.</summary>
public enum FeatureKind
{
    Numeric,
    Categorical,
}

/// <summary>One raw input column. Categorical values are stored as the index into <see cref="Categories"/>.</summary>
public sealed record FeatureSpec(string Name, FeatureKind Kind, IReadOnlyList<string>? Categories = null)
{
    public int CategoryCount => Categories?.Count ?? 0;
}

/// <summary>
/// The internal schema every importer produces: static (per-patient) columns, per-visit columns and
/// the outcome's class names (two for a binary outcome).
/// </summary>
public sealed record FeatureSchema(
    IReadOnlyList<FeatureSpec> StaticFeatures,
    IReadOnlyList<FeatureSpec> VisitFeatures,
    IReadOnlyList<string> ClassNames)
{
    public int Classes => ClassNames.Count;

    /// <summary>Names of the numeric columns, static first then per-visit: the order of <c>FeatureSums</c>.</summary>
    public IReadOnlyList<string> NumericColumns()
    {
        var names = new List<string>();
        foreach (var f in StaticFeatures) if (f.Kind == FeatureKind.Numeric) names.Add(f.Name);
        foreach (var f in VisitFeatures) if (f.Kind == FeatureKind.Numeric) names.Add(f.Name);
        return names;
    }
}

/// <summary>
/// One patient in the internal schema. Missing values are <see cref="double.NaN"/>; categorical values are
/// category indices stored as doubles. <see cref="PatientId"/> is already pseudonymized by importers
/// that read direct identifiers.
/// </summary>
public sealed record PatientRecord(
    string PatientId,
    string Site,
    double[] Static,
    IReadOnlyList<double[]> Visits,
    int Label);

/// <summary>Patients that share one schema.</summary>
public sealed record PatientCohort(FeatureSchema Schema, IReadOnlyList<PatientRecord> Patients);
