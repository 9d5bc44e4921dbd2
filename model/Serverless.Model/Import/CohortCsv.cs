using System.Globalization;
using System.Text;

namespace Serverless.Model.Import;

/// <summary>
/// The cohort CSV: one row per visit, static columns repeated on every row of a patient, empty cells for
/// missing values. Columns: hospital, patient_id, visit (1-based, consecutive), the static and visit
/// columns of <see cref="CohortGenerator.Schema"/>, and outcome (0/1).
/// </summary>
public static class CohortCsv
{
    public const string Hospital = "hospital", PatientId = "patient_id", Visit = "visit", Outcome = "outcome";

    public static IReadOnlyList<string> Columns { get; } =
        [Hospital, PatientId, Visit, .. CohortGenerator.Schema.StaticFeatures.Select(f => f.Name), .. CohortGenerator.Schema.VisitFeatures.Select(f => f.Name), Outcome];

    /// <summary>Plausibility limits: wide enough for gross outliers (they are data, capped later), narrow enough to catch garbage.</summary>
    internal static readonly Dictionary<string, (double Min, double Max)> Limits = new(StringComparer.Ordinal)
    {
        [CohortGenerator.Age] = (0, 130),
        [CohortGenerator.Bmi] = (1, 300),
        [CohortGenerator.Systolic] = (1, 1000),
        [CohortGenerator.Diastolic] = (1, 1000),
        [CohortGenerator.Glucose] = (1, 10000),
        [CohortGenerator.HbA1c] = (0.5, 100),
        [CohortGenerator.Cholesterol] = (1, 10000),
        [CohortGenerator.HeartRate] = (1, 1000),
    };

    public static void Write(IEnumerable<PatientRecord> patients, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(patients);
        ArgumentNullException.ThrowIfNull(writer);
        var schema = CohortGenerator.Schema;
        writer.Write(string.Join(',', Columns));
        writer.Write('\n');
        var line = new StringBuilder();
        foreach (var p in patients)
        {
            for (var t = 0; t < p.Visits.Count; t++)
            {
                line.Clear();
                line.Append(Quote(p.Site)).Append(',').Append(Quote(p.PatientId)).Append(',').Append(t + 1);
                for (var i = 0; i < schema.StaticFeatures.Count; i++) line.Append(',').Append(Format(schema.StaticFeatures[i], p.Static[i]));
                for (var i = 0; i < schema.VisitFeatures.Count; i++) line.Append(',').Append(Format(schema.VisitFeatures[i], p.Visits[t][i]));
                line.Append(',').Append(p.Label);
                writer.Write(line);
                writer.Write('\n');
            }
        }
    }

    private static string Format(FeatureSpec spec, double value)
    {
        if (double.IsNaN(value)) return "";
        return spec.Kind == FeatureKind.Categorical ? spec.Categories![(int)value] : value.ToString("R", CultureInfo.InvariantCulture);
    }

    private static string Quote(string s) =>
        s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"") + "\"";

    public static ImportResult Read(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Read(reader, path);
    }

    public static ImportResult Read(TextReader reader, string file)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var schema = CohortGenerator.Schema;
        var errors = new List<ImportError>();
        using var parser = ImportParsing.OpenCsv(reader, file, errors);
        var header = ImportParsing.ReadHeader(parser, file, Columns, [], errors);
        if (header is null) return new ImportResult(new PatientCohort(schema, []), errors, []);

        var patients = new List<Builder>();
        var byKey = new Dictionary<(string, string), Builder>();
        while (parser.Read())
        {
            var rec = parser.Record!;
            var row = parser.RawRow;
            if (rec.Length == 1 && rec[0].Length == 0) continue; // blank line
            var before = errors.Count;
            if (rec.Length != Columns.Count)
            {
                errors.Add(new ImportError(file, row, "*", $"row has {rec.Length} fields, the header has {Columns.Count}"));
                continue;
            }
            string Cell(string column) => rec[header[column]];
            var site = Cell(Hospital).Trim();
            var id = Cell(PatientId).Trim();
            if (site.Length == 0) errors.Add(new ImportError(file, row, Hospital, "value is required"));
            if (id.Length == 0) errors.Add(new ImportError(file, row, PatientId, "value is required"));
            var okVisit = int.TryParse(Cell(Visit), NumberStyles.None, CultureInfo.InvariantCulture, out var visit) && visit >= 1;
            if (!okVisit) errors.Add(new ImportError(file, row, Visit, "the value is not a visit number >= 1"));

            var statics = new double[schema.StaticFeatures.Count];
            for (var i = 0; i < statics.Length; i++)
            {
                var spec = schema.StaticFeatures[i];
                var raw = Cell(spec.Name);
                if (spec.Kind == FeatureKind.Categorical)
                    ImportParsing.TryCategory(raw, spec.Categories!, allowMissing: spec.Name == CohortGenerator.Smoking, file, row, spec.Name, errors, out statics[i]);
                else if (spec.Name is CohortGenerator.Hypertension or CohortGenerator.Diabetes)
                    ImportParsing.TryCategory(raw, ["0", "1"], allowMissing: false, file, row, spec.Name, errors, out statics[i]);
                else
                    ImportParsing.TryNumber(raw, Limits[spec.Name].Min, Limits[spec.Name].Max, allowMissing: false, file, row, spec.Name, errors, out statics[i]);
            }
            var values = new double[schema.VisitFeatures.Count];
            for (var i = 0; i < values.Length; i++)
            {
                var spec = schema.VisitFeatures[i];
                ImportParsing.TryNumber(Cell(spec.Name), Limits[spec.Name].Min, Limits[spec.Name].Max, allowMissing: true, file, row, spec.Name, errors, out values[i]);
            }
            ImportParsing.TryCategory(Cell(Outcome), ["0", "1"], allowMissing: false, file, row, Outcome, errors, out var outcome);

            if (site.Length == 0 || id.Length == 0) continue;
            if (!byKey.TryGetValue((site, id), out var b))
            {
                b = new Builder(site, id, statics, outcome, row);
                byKey.Add((site, id), b);
                patients.Add(b);
            }
            else if (errors.Count == before)
            {
                // Static columns and the outcome must agree on every row of a patient.
                for (var i = 0; i < statics.Length; i++)
                    if (!SameValue(statics[i], b.Static[i]))
                        errors.Add(new ImportError(file, row, schema.StaticFeatures[i].Name, $"differs from the patient's first row (line {b.FirstRow})"));
                if (!SameValue(outcome, b.Outcome))
                    errors.Add(new ImportError(file, row, Outcome, $"differs from the patient's first row (line {b.FirstRow})"));
            }
            if (okVisit && visit != b.Visits.Count + 1)
                errors.Add(new ImportError(file, row, Visit, $"the visit number does not follow the patient's previous row (first row: line {b.FirstRow}); visits must be consecutive from 1"));
            b.Visits.Add(values);
            if (errors.Count > before) b.Bad = true;
        }
        return Finish(schema, patients, errors);
    }

    private static bool SameValue(double a, double b) => double.IsNaN(a) ? double.IsNaN(b) : a == b;

    private static ImportResult Finish(FeatureSchema schema, List<Builder> builders, List<ImportError> errors)
    {
        var good = new List<PatientRecord>();
        var rejected = new List<string>();
        foreach (var b in builders)
        {
            if (b.Bad) rejected.Add(b.Id);
            else good.Add(new PatientRecord(b.Id, b.Site, b.Static, b.Visits, (int)b.Outcome));
        }
        return new ImportResult(new PatientCohort(schema, good), errors, rejected);
    }

    private sealed class Builder(string site, string id, double[] statics, double outcome, int firstRow)
    {
        public string Site { get; } = site;
        public string Id { get; } = id;
        public double[] Static { get; } = statics;
        public double Outcome { get; } = outcome;
        public int FirstRow { get; } = firstRow;
        public List<double[]> Visits { get; } = [];
        public bool Bad { get; set; }
    }
}
