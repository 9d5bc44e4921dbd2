using System.Globalization;

namespace Serverless.Model.Import;

/// <summary>
/// Writes patients of <see cref="CohortGenerator.Schema"/> as one FHIR R4 collection Bundle: a Patient per
/// patient, one Observation per measured value (LOINC, UCUM), a smoking-status Observation, and Conditions
/// for hypertension, diabetes and (when the label is 1) the outcome. Visit t is dated
/// <c>firstVisit + 91·t</c> days; birthDate makes the age at the last visit equal the age column.
/// </summary>
public static class FhirBundleWriter
{
    public static void Write(IEnumerable<PatientRecord> patients, Stream destination, DateOnly? firstVisit = null)
    {
        ArgumentNullException.ThrowIfNull(patients);
        ArgumentNullException.ThrowIfNull(destination);
        var start = firstVisit ?? new DateOnly(2024, 1, 1);
        var schema = CohortGenerator.Schema;
        using var w = new Utf8JsonWriter(destination, new JsonWriterOptions { Indented = false });
        w.WriteStartObject();
        w.WriteString("resourceType", "Bundle");
        w.WriteString("type", "collection");
        w.WriteStartArray("entry");
        foreach (var p in patients)
        {
            var id = p.PatientId;
            var last = start.AddDays(91 * (p.Visits.Count - 1));
            Entry(w, () =>
            {
                w.WriteString("resourceType", "Patient");
                w.WriteString("id", id);
                w.WriteString("gender", p.Static[1] == 1 ? "male" : "female");
                w.WriteString("birthDate", last.AddYears(-(int)p.Static[0]).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
            });
            if (!double.IsNaN(p.Static[2]))
            {
                var answer = Fhir.SmokingAnswers.First(kv => kv.Value == (int)p.Static[2]).Key;
                Entry(w, () =>
                {
                    Observation(w, id, Fhir.SmokingStatus, "Tobacco smoking status", last);
                    Concept(w, "valueCodeableConcept", Fhir.Snomed, answer);
                });
            }
            if (p.Static[3] == 1) Entry(w, () => Condition(w, id, Fhir.HypertensionCodes[0]));
            if (p.Static[4] == 1) Entry(w, () => Condition(w, id, Fhir.DiabetesCodes[0]));
            if (p.Label == 1) Entry(w, () => Condition(w, id, Fhir.DefaultOutcomeCodes[0]));
            for (var t = 0; t < p.Visits.Count; t++)
            {
                var date = start.AddDays(91 * t);
                for (var i = 0; i < schema.VisitFeatures.Count; i++)
                {
                    var value = p.Visits[t][i];
                    if (double.IsNaN(value)) continue;
                    var (code, unit, display) = Fhir.VitalCodes[schema.VisitFeatures[i].Name];
                    Entry(w, () =>
                    {
                        Observation(w, id, code, display, date);
                        w.WriteStartObject("valueQuantity");
                        w.WriteNumber("value", value);
                        w.WriteString("unit", unit);
                        w.WriteString("system", Fhir.Ucum);
                        w.WriteString("code", unit);
                        w.WriteEndObject();
                    });
                }
            }
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Entry(Utf8JsonWriter w, Action resource)
    {
        w.WriteStartObject();
        w.WriteStartObject("resource");
        resource();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Observation(Utf8JsonWriter w, string patient, string loinc, string display, DateOnly date)
    {
        w.WriteString("resourceType", "Observation");
        w.WriteString("status", "final");
        w.WriteStartObject("code");
        w.WriteStartArray("coding");
        w.WriteStartObject();
        w.WriteString("system", Fhir.Loinc);
        w.WriteString("code", loinc);
        w.WriteString("display", display);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteStartObject("subject");
        w.WriteString("reference", $"Patient/{patient}");
        w.WriteEndObject();
        w.WriteString("effectiveDateTime", date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
    }

    private static void Condition(Utf8JsonWriter w, string patient, string snomed)
    {
        w.WriteString("resourceType", "Condition");
        Concept(w, "code", Fhir.Snomed, snomed);
        w.WriteStartObject("subject");
        w.WriteString("reference", $"Patient/{patient}");
        w.WriteEndObject();
    }

    private static void Concept(Utf8JsonWriter w, string property, string system, string code)
    {
        w.WriteStartObject(property);
        w.WriteStartArray("coding");
        w.WriteStartObject();
        w.WriteString("system", system);
        w.WriteString("code", code);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
