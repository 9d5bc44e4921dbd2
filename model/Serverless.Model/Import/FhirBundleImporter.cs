using System.Globalization;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Import;

/// <summary>Options of <see cref="FhirBundleImporter"/>.</summary>
public sealed record FhirImportOptions
{
    /// <summary>Site (hospital) name given to the bundle's patients; defaults to the file name.</summary>
    public string? Site { get; init; }

    /// <summary>SNOMED CT codes of Conditions that count as the outcome.</summary>
    public IReadOnlyList<string> OutcomeCodes { get; init; } = Fhir.DefaultOutcomeCodes;
}

/// <summary>
/// Reads FHIR R4 JSON bundles (Patient, Observation, Condition) into <see cref="CohortGenerator.Schema"/>.
/// Observations with the LOINC codes of <see cref="Fhir.VitalCodes"/> (also as components of a blood-pressure
/// panel) are grouped into visits by effective date; smoking status comes from LOINC 72166-2, hypertension and
/// diabetes history and the outcome from Conditions. Units must be the expected UCUM codes (no conversions are
/// guessed). Patient ids become keyed pseudonyms. Errors name the file, the 1-based bundle entry and the JSON path.
/// Resources of other types and observations with other codes are not features and are skipped.
/// </summary>
public static class FhirBundleImporter
{
    public static ImportResult Read(string path, Pseudonymizer pseudonymizer, FhirImportOptions? options = null)
    {
        using var stream = File.OpenRead(path);
        return Read(stream, path, pseudonymizer, options);
    }

    /// <summary>The JSON path of the first property name or string that does not decode to valid Unicode, or null.</summary>
    private static string? FirstInvalidString(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                try { element.GetString(); } catch (InvalidOperationException) { return path; }
                return null;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in element.EnumerateArray())
                    if (FirstInvalidString(item, $"{path}[{i++}]") is { } bad) return bad;
                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try { name = property.Name; } catch (InvalidOperationException) { return path; }
                    if (FirstInvalidString(property.Value, $"{path}.{name}") is { } bad) return bad;
                }
                return null;
            default:
                return null;
        }
    }

    public static ImportResult Read(Stream stream, string file, Pseudonymizer pseudonymizer, FhirImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(pseudonymizer);
        options ??= new FhirImportOptions();
        var schema = CohortGenerator.Schema;
        var errors = new List<ImportError>();
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            errors.Add(new ImportError(file, (int)(e.LineNumber ?? 0) + 1, "$", $"not valid JSON (byte {e.BytePositionInLine ?? 0} of the line)"));
            return new ImportResult(new PatientCohort(schema, []), errors, []);
        }
        using var _ = doc;
        // JsonDocument checks structure but decodes strings lazily: an invalid UTF-8 sequence or a lone
        // surrogate escape would throw InvalidOperationException mid-import (found by the fuzz suite).
        if (FirstInvalidString(doc.RootElement, "$") is { } badPath)
        {
            errors.Add(new ImportError(file, 0, badPath, "not valid JSON: a string is not valid Unicode"));
            return new ImportResult(new PatientCohort(schema, []), errors, []);
        }
        var site = options.Site ?? Path.GetFileNameWithoutExtension(file);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("resourceType", out var rt) || rt.ValueKind != JsonValueKind.String || rt.GetString() != "Bundle")
        {
            errors.Add(new ImportError(file, 0, "resourceType", "expected a FHIR Bundle"));
            return new ImportResult(new PatientCohort(schema, []), errors, []);
        }
        if (!root.TryGetProperty("entry", out var entries) || entries.ValueKind != JsonValueKind.Array)
        {
            errors.Add(new ImportError(file, 0, "entry", "bundle has no entry array"));
            return new ImportResult(new PatientCohort(schema, []), errors, []);
        }

        var patients = new Dictionary<string, PatientBuilder>(StringComparer.Ordinal);
        var order = new List<PatientBuilder>();
        var aliases = new Dictionary<string, string>(StringComparer.Ordinal); // fullUrl -> patient id
        var deferred = new List<(int Row, JsonElement Resource)>();

        // Pass 1: patients (so observations may come before their patient in the bundle).
        var row = 0;
        foreach (var entry in entries.EnumerateArray())
        {
            row++;
            if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("resource", out var resource) || resource.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new ImportError(file, row, "resource", "entry has no resource object"));
                continue;
            }
            var type = Str(resource, "resourceType");
            if (type == "Patient")
            {
                var p = ReadPatient(resource, file, row, errors);
                if (p is null) continue;
                if (patients.ContainsKey(p.Id)) { errors.Add(new ImportError(file, row, "resource.id", "a patient id appears twice")); patients[p.Id].Bad = true; continue; }
                patients.Add(p.Id, p);
                order.Add(p);
                if (Str(entry, "fullUrl") is { Length: > 0 } url) aliases[url] = p.Id;
            }
            else if (type is "Observation" or "Condition") deferred.Add((row, resource));
            else if (type is null) errors.Add(new ImportError(file, row, "resource.resourceType", "missing resourceType"));
        }

        // Pass 2: observations and conditions.
        foreach (var (r, resource) in deferred)
        {
            var subject = resource.TryGetProperty("subject", out var s) ? Str(s, "reference") : null;
            string? pid = null;
            if (subject is null) errors.Add(new ImportError(file, r, "resource.subject.reference", "missing subject reference"));
            else if (subject.StartsWith("Patient/", StringComparison.Ordinal)) pid = subject["Patient/".Length..];
            else if (aliases.TryGetValue(subject, out var alias)) pid = alias;
            if (subject is not null && (pid is null || !patients.ContainsKey(pid)))
            {
                errors.Add(new ImportError(file, r, "resource.subject.reference", "the reference is not a patient in this bundle"));
                continue;
            }
            if (pid is null) continue;
            var patient = patients[pid];
            var before = errors.Count;
            if (Str(resource, "resourceType") == "Observation") ReadObservation(resource, patient, file, r, errors);
            else ReadCondition(resource, patient, options, file, r, errors);
            if (errors.Count > before) patient.Bad = true;
        }

        var good = new List<PatientRecord>();
        var rejected = new List<string>();
        foreach (var p in order)
        {
            var pseudonym = pseudonymizer.Pseudonymize(p.Id);
            if (p.Visits.Count == 0 && !p.Bad)
            {
                errors.Add(new ImportError(file, p.Row, "resource", "the patient has no vital-sign observations"));
                p.Bad = true;
            }
            if (p.Bad) { rejected.Add(pseudonym); continue; }
            var dates = p.Visits.Keys.Order().ToList();
            var last = dates[^1];
            var age = last.Year - p.BirthDate.Year - (last < p.BirthDate.AddYears(last.Year - p.BirthDate.Year) ? 1 : 0);
            if (age is < 0 or > 130)
            {
                errors.Add(new ImportError(file, p.Row, "resource.birthDate", "the age at the last visit would be outside 0..130"));
                rejected.Add(pseudonym);
                continue;
            }
            var statics = new double[] { age, p.Sex, p.Smoking, p.Hypertension ? 1 : 0, p.Diabetes ? 1 : 0 };
            good.Add(new PatientRecord(pseudonym, site, statics, dates.Select(d => p.Visits[d]).ToList(), p.Outcome ? 1 : 0));
        }
        return new ImportResult(new PatientCohort(schema, good), errors, rejected);
    }

    private static PatientBuilder? ReadPatient(JsonElement r, string file, int row, List<ImportError> errors)
    {
        var id = Str(r, "id");
        if (string.IsNullOrWhiteSpace(id)) { errors.Add(new ImportError(file, row, "resource.id", "patient has no id")); return null; }
        var p = new PatientBuilder(id, row);
        var gender = Str(r, "gender");
        if (gender == "female") p.Sex = 0;
        else if (gender == "male") p.Sex = 1;
        else { errors.Add(new ImportError(file, row, "resource.gender", gender is null ? "gender is required" : "the gender is not supported by the model (female, male)")); p.Bad = true; }
        var birth = Str(r, "birthDate");
        if (birth is null || !DateOnly.TryParseExact(birth, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var bd))
        {
            errors.Add(new ImportError(file, row, "resource.birthDate", birth is null ? "birthDate is required" : "the value is not a full date (yyyy-MM-dd)"));
            p.Bad = true;
        }
        else p.BirthDate = bd;
        return p;
    }

    private static void ReadObservation(JsonElement r, PatientBuilder p, string file, int row, List<ImportError> errors)
    {
        var status = Str(r, "status");
        if (status is not ("final" or "amended" or "corrected"))
        {
            errors.Add(new ImportError(file, row, "resource.status", $"status '{status}' is not final, amended or corrected"));
            return;
        }
        var code = Code(r, "code", Fhir.Loinc);
        if (code is null) return; // not a LOINC-coded observation: not a feature
        if (code == Fhir.SmokingStatus)
        {
            var answer = Code(r, "valueCodeableConcept", Fhir.Snomed);
            if (answer is null || !Fhir.SmokingAnswers.TryGetValue(answer, out var category))
                errors.Add(new ImportError(file, row, "resource.valueCodeableConcept", "the smoking status is not a known SNOMED CT answer"));
            else p.Smoking = category;
            return;
        }
        var isPanel = code == Fhir.BloodPressurePanel;
        var column = Fhir.VitalCodes.FirstOrDefault(kv => kv.Value.Code == code).Key;
        if (column is null && !isPanel) return; // another LOINC code: not a feature
        var date = EffectiveDate(r, file, row, errors);
        if (date is null) return;
        if (isPanel)
        {
            if (!r.TryGetProperty("component", out var components) || components.ValueKind != JsonValueKind.Array)
            {
                errors.Add(new ImportError(file, row, "resource.component", "blood-pressure panel has no components"));
                return;
            }
            var i = 0;
            foreach (var c in components.EnumerateArray())
            {
                var cc = Code(c, "code", Fhir.Loinc);
                var col = Fhir.VitalCodes.FirstOrDefault(kv => kv.Value.Code == cc).Key;
                if (col is not null) SetValue(p, date.Value, col, c, $"resource.component[{i}]", file, row, errors);
                i++;
            }
            return;
        }
        SetValue(p, date.Value, column!, r, "resource", file, row, errors);
    }

    private static void SetValue(PatientBuilder p, DateOnly date, string column, JsonElement holder, string path, string file, int row, List<ImportError> errors)
    {
        if (!holder.TryGetProperty("valueQuantity", out var q) || q.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new ImportError(file, row, $"{path}.valueQuantity", "a quantity value is required"));
            return;
        }
        if (!q.TryGetProperty("value", out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var value))
        {
            errors.Add(new ImportError(file, row, $"{path}.valueQuantity.value", "value must be a number"));
            return;
        }
        var expectedUnit = Fhir.VitalCodes[column].Unit;
        var unit = Str(q, "code") ?? Str(q, "unit");
        if (unit is not null && unit != expectedUnit)
        {
            errors.Add(new ImportError(file, row, $"{path}.valueQuantity.code", $"unit '{unit}' for {column}, expected '{expectedUnit}' (no conversion is guessed)"));
            return;
        }
        var (min, max) = CohortCsv.Limits[column];
        if (!(value >= min && value <= max))
        {
            errors.Add(new ImportError(file, row, $"{path}.valueQuantity.value", $"the value is outside the plausible range {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}"));
            return;
        }
        var index = IndexOf(column);
        if (!p.Visits.TryGetValue(date, out var visit))
        {
            visit = new double[CohortGenerator.Schema.VisitFeatures.Count];
            Array.Fill(visit, double.NaN);
            p.Visits.Add(date, visit);
        }
        if (!double.IsNaN(visit[index]))
        {
            errors.Add(new ImportError(file, row, $"{path}.valueQuantity.value", $"a second {column} value on the same date"));
            return;
        }
        visit[index] = value;
    }

    private static int IndexOf(string column)
    {
        var list = CohortGenerator.Schema.VisitFeatures;
        for (var i = 0; i < list.Count; i++) if (list[i].Name == column) return i;
        throw new InvalidOperationException(column);
    }

    private static void ReadCondition(JsonElement r, PatientBuilder p, FhirImportOptions options, string file, int row, List<ImportError> errors)
    {
        if (r.TryGetProperty("verificationStatus", out var vs) && Code(vs, null, null) is "refuted" or "entered-in-error") return; // not present
        var code = Code(r, "code", Fhir.Snomed);
        if (code is null)
        {
            errors.Add(new ImportError(file, row, "resource.code", "condition has no SNOMED CT coding"));
            return;
        }
        if (Fhir.HypertensionCodes.Contains(code)) p.Hypertension = true;
        if (Fhir.DiabetesCodes.Contains(code)) p.Diabetes = true;
        if (options.OutcomeCodes.Contains(code)) p.Outcome = true;
    }

    private static DateOnly? EffectiveDate(JsonElement r, string file, int row, List<ImportError> errors)
    {
        var raw = Str(r, "effectiveDateTime");
        if (raw is null)
        {
            errors.Add(new ImportError(file, row, "resource.effectiveDateTime", "an effective date is required"));
            return null;
        }
        if (raw.Length >= 10 && DateOnly.TryParseExact(raw[..10], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d)
            && (raw.Length == 10 || DateTimeOffset.TryParse(raw, CultureInfo.InvariantCulture, DateTimeStyles.None, out _)))
            return d;
        errors.Add(new ImportError(file, row, "resource.effectiveDateTime", "the value is not a FHIR date or dateTime"));
        return null;
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>The first coding's code in <paramref name="system"/> of the CodeableConcept <paramref name="property"/> (or of <paramref name="e"/> itself).</summary>
    private static string? Code(JsonElement e, string? property, string? system)
    {
        var concept = e;
        if (property is not null && !e.TryGetProperty(property, out concept)) return null;
        if (concept.ValueKind != JsonValueKind.Object || !concept.TryGetProperty("coding", out var codings) || codings.ValueKind != JsonValueKind.Array) return null;
        foreach (var c in codings.EnumerateArray())
            if (system is null || Str(c, "system") == system) return Str(c, "code");
        return null;
    }

    private sealed class PatientBuilder(string id, int row)
    {
        public string Id { get; } = id;
        public int Row { get; } = row;
        public double Sex { get; set; } = double.NaN;
        public DateOnly BirthDate { get; set; }
        public double Smoking { get; set; } = double.NaN;
        public bool Hypertension { get; set; }
        public bool Diabetes { get; set; }
        public bool Outcome { get; set; }
        public SortedDictionary<DateOnly, double[]> Visits { get; } = [];
        public bool Bad { get; set; }
    }
}
