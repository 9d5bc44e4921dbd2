using System.Globalization;
using System.Text;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Import;

/// <summary>
/// Reads the public Kaggle "healthcare-dataset" CSV (one row per admission). Visits are grouped per patient
/// by (Name, Gender, Blood Type) and ordered by admission date; the outcome is the last admission's
/// "Test Results" (Normal / Abnormal / Inconclusive). Direct identifiers are never kept: the grouping key
/// becomes a keyed HMAC pseudonym, Doctor and Room Number are validated and dropped. Earlier admissions'
/// test results are not used as features (the last one is the label).
/// </summary>
public static class KaggleHealthcareImporter
{
    public const string Name = "Name", Age = "Age", Gender = "Gender", BloodType = "Blood Type", MedicalCondition = "Medical Condition",
        AdmissionDate = "Date of Admission", Doctor = "Doctor", Hospital = "Hospital", Insurance = "Insurance Provider",
        Billing = "Billing Amount", Room = "Room Number", AdmissionType = "Admission Type", DischargeDate = "Discharge Date",
        Medication = "Medication", TestResults = "Test Results";

    public static IReadOnlyList<string> Columns { get; } =
        [Name, Age, Gender, BloodType, MedicalCondition, AdmissionDate, Doctor, Hospital, Insurance, Billing, Room, AdmissionType, DischargeDate, Medication, TestResults];

    public static readonly IReadOnlyList<string> Genders = ["Female", "Male"];
    public static readonly IReadOnlyList<string> BloodTypes = ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"];
    public static readonly IReadOnlyList<string> Conditions = ["Arthritis", "Asthma", "Cancer", "Diabetes", "Hypertension", "Obesity"];
    public static readonly IReadOnlyList<string> Insurers = ["Aetna", "Blue Cross", "Cigna", "Medicare", "UnitedHealthcare"];
    public static readonly IReadOnlyList<string> AdmissionTypes = ["Elective", "Emergency", "Urgent"];
    public static readonly IReadOnlyList<string> Medications = ["Aspirin", "Ibuprofen", "Lipitor", "Paracetamol", "Penicillin"];
    public static readonly IReadOnlyList<string> Results = ["Normal", "Abnormal", "Inconclusive"];

    /// <summary>Internal schema of imported Kaggle records (multiclass outcome).</summary>
    public static FeatureSchema Schema { get; } = new(
        [
            new FeatureSpec("gender", FeatureKind.Categorical, Genders),
            new FeatureSpec("blood_type", FeatureKind.Categorical, BloodTypes),
        ],
        [
            new FeatureSpec("age", FeatureKind.Numeric),
            new FeatureSpec("condition", FeatureKind.Categorical, Conditions),
            new FeatureSpec("admission_type", FeatureKind.Categorical, AdmissionTypes),
            new FeatureSpec("medication", FeatureKind.Categorical, Medications),
            new FeatureSpec("insurance", FeatureKind.Categorical, Insurers),
            new FeatureSpec("billing_amount", FeatureKind.Numeric),
            new FeatureSpec("length_of_stay_days", FeatureKind.Numeric),
        ],
        Results);

    private const string DateFormat = "yyyy-MM-dd";

    public static ImportResult Read(string path, Pseudonymizer pseudonymizer)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Read(reader, path, pseudonymizer);
    }

    public static ImportResult Read(TextReader reader, string file, Pseudonymizer pseudonymizer)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(pseudonymizer);
        var errors = new List<ImportError>();
        using var parser = ImportParsing.OpenCsv(reader, file, errors);
        var header = ImportParsing.ReadHeader(parser, file, Columns, [], errors);
        if (header is null) return new ImportResult(new PatientCohort(Schema, []), errors, []);

        var patients = new Dictionary<string, Patient>(StringComparer.Ordinal);
        var order = new List<Patient>();
        while (parser.Read())
        {
            var rec = parser.Record!;
            var row = parser.RawRow;
            if (rec.Length == 1 && rec[0].Length == 0) continue;
            if (rec.Length != Columns.Count)
            {
                errors.Add(new ImportError(file, row, "*", $"row has {rec.Length} fields, the header has {Columns.Count}"));
                continue;
            }
            var before = errors.Count;
            string Cell(string c) => rec[header[c]].Trim();

            var name = Cell(Name);
            if (name.Length == 0) errors.Add(new ImportError(file, row, Name, "value is required"));
            if (Cell(Doctor).Length == 0) errors.Add(new ImportError(file, row, Doctor, "value is required"));
            if (!int.TryParse(Cell(Room), NumberStyles.None, CultureInfo.InvariantCulture, out _))
                errors.Add(new ImportError(file, row, Room, "the value is not a room number"));
            var site = Cell(Hospital);
            if (site.Length == 0) errors.Add(new ImportError(file, row, Hospital, "value is required"));

            ImportParsing.TryNumber(Cell(Age), 0, 120, false, file, row, Age, errors, out var age);
            if (!double.IsNaN(age) && age != Math.Floor(age)) errors.Add(new ImportError(file, row, Age, "age must be a whole number of years"));
            ImportParsing.TryCategory(Cell(Gender), Genders, false, file, row, Gender, errors, out var gender);
            ImportParsing.TryCategory(Cell(BloodType), BloodTypes, false, file, row, BloodType, errors, out var blood);
            ImportParsing.TryCategory(Cell(MedicalCondition), Conditions, false, file, row, MedicalCondition, errors, out var condition);
            ImportParsing.TryCategory(Cell(AdmissionType), AdmissionTypes, false, file, row, AdmissionType, errors, out var admissionType);
            ImportParsing.TryCategory(Cell(Medication), Medications, false, file, row, Medication, errors, out var medication);
            ImportParsing.TryCategory(Cell(Insurance), Insurers, false, file, row, Insurance, errors, out var insurer);
            ImportParsing.TryCategory(Cell(TestResults), Results, false, file, row, TestResults, errors, out var result);
            // Billing can be negative in the public dataset (refunds/adjustments): a wide range, not a sign check.
            ImportParsing.TryNumber(Cell(Billing), -1e7, 1e7, false, file, row, Billing, errors, out var billing);
            var admitted = ParseDate(Cell(AdmissionDate), file, row, AdmissionDate, errors);
            var discharged = ParseDate(Cell(DischargeDate), file, row, DischargeDate, errors);
            double stay = double.NaN;
            if (admitted is { } a && discharged is { } d)
            {
                if (d < a) errors.Add(new ImportError(file, row, DischargeDate, "the discharge date is before the admission date"));
                else stay = d.DayNumber - a.DayNumber;
            }

            if (name.Length == 0) continue;
            // The grouping key is pseudonymized at once; the name itself is never stored.
            var key = pseudonymizer.Pseudonymize($"{name}|{Cell(Gender)}|{Cell(BloodType)}");
            if (!patients.TryGetValue(key, out var p))
            {
                p = new Patient(key, site, [gender, blood]);
                patients.Add(key, p);
                order.Add(p);
            }
            p.Admissions.Add((admitted ?? DateOnly.MinValue, p.Admissions.Count, [age, condition, admissionType, medication, insurer, billing, stay], (int)(double.IsNaN(result) ? 0 : result)));
            if (errors.Count > before) p.Bad = true;
        }

        var good = new List<PatientRecord>();
        var rejected = new List<string>();
        foreach (var p in order)
        {
            if (p.Bad) { rejected.Add(p.Id); continue; }
            var sorted = p.Admissions.OrderBy(a => a.Date).ThenBy(a => a.Index).ToList();
            good.Add(new PatientRecord(p.Id, p.Site, p.Static, sorted.Select(a => a.Values).ToList(), sorted[^1].Result));
        }
        return new ImportResult(new PatientCohort(Schema, good), errors, rejected);
    }

    private static DateOnly? ParseDate(string raw, string file, int row, string column, List<ImportError> errors)
    {
        if (DateOnly.TryParseExact(raw, DateFormat, CultureInfo.InvariantCulture, DateTimeStyles.None, out var d)) return d;
        errors.Add(new ImportError(file, row, column, "the value is not a date (yyyy-MM-dd)"));
        return null;
    }

    private sealed class Patient(string id, string site, double[] statics)
    {
        public string Id { get; } = id;
        public string Site { get; } = site;
        public double[] Static { get; } = statics;
        public List<(DateOnly Date, int Index, double[] Values, int Result)> Admissions { get; } = [];
        public bool Bad { get; set; }
    }
}
