using System.Text;
using System.Text.Json.Nodes;
using Serverless.Model.Data;
using Serverless.Model.Import;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Tests.Import;

public sealed class FhirBundleImporterTests
{
    private static Pseudonymizer Key() => new(Enumerable.Repeat((byte)3, 32).ToArray());

    private static ImportResult Read(string json, FhirImportOptions? options = null)
    {
        using var key = Key();
        return FhirBundleImporter.Read(new MemoryStream(Encoding.UTF8.GetBytes(json)), "bundle.json", key, options);
    }

    [Fact]
    public void A_generated_cohort_written_as_fhir_reads_back_with_the_same_values()
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 1, PatientsPerHospital = 40, Visits = 6, Seed = 5, MissingRate = 0.1 });
        var patients = cohort.Hospitals[0].Patients;
        var ms = new MemoryStream();
        FhirBundleWriter.Write(patients, ms);
        var r = Read(Encoding.UTF8.GetString(ms.ToArray()), new FhirImportOptions { Site = "h1" });
        Assert.Empty(r.Errors);
        // A visit whose values are all missing has no observation, so compare only patients without such visits.
        var complete = patients.Where(p => p.Visits.All(v => v.Any(x => !double.IsNaN(x)))).ToList();
        var byId = r.Cohort.Patients.ToDictionary(p => p.PatientId);
        using var key = Key();
        CohortCsvTests.AssertSamePatients(complete, complete.Select(p => byId[key.Pseudonymize(p.PatientId)]).ToList(), compareIds: false);
        Assert.All(r.Cohort.Patients, p => Assert.Equal("h1", p.Site));
    }

    private static JsonObject Bundle(params JsonObject[] resources)
    {
        var entries = new JsonArray();
        foreach (var r in resources) entries.Add(new JsonObject { ["resource"] = r });
        return new JsonObject { ["resourceType"] = "Bundle", ["type"] = "collection", ["entry"] = entries };
    }

    private static JsonObject Patient(string id = "a", string gender = "female", string? birth = "1960-05-01") =>
        new() { ["resourceType"] = "Patient", ["id"] = id, ["gender"] = gender, ["birthDate"] = birth };

    private static JsonObject Obs(string code, double value, string unit, string date = "2024-01-01", string patient = "a", string status = "final") => new()
    {
        ["resourceType"] = "Observation",
        ["status"] = status,
        ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Loinc, ["code"] = code }) },
        ["subject"] = new JsonObject { ["reference"] = $"Patient/{patient}" },
        ["effectiveDateTime"] = date,
        ["valueQuantity"] = new JsonObject { ["value"] = value, ["system"] = Fhir.Ucum, ["code"] = unit },
    };

    [Fact]
    public void Blood_pressure_panels_conditions_and_smoking_status_map_into_the_schema()
    {
        var panel = new JsonObject
        {
            ["resourceType"] = "Observation", ["status"] = "final",
            ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Loinc, ["code"] = Fhir.BloodPressurePanel }) },
            ["subject"] = new JsonObject { ["reference"] = "Patient/a" },
            ["effectiveDateTime"] = "2024-03-01T10:00:00Z",
            ["component"] = new JsonArray(
                new JsonObject { ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Loinc, ["code"] = "8480-6" }) }, ["valueQuantity"] = new JsonObject { ["value"] = 141, ["code"] = "mm[Hg]" } },
                new JsonObject { ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Loinc, ["code"] = "8462-4" }) }, ["valueQuantity"] = new JsonObject { ["value"] = 88, ["code"] = "mm[Hg]" } }),
        };
        var smoking = new JsonObject
        {
            ["resourceType"] = "Observation", ["status"] = "final",
            ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Loinc, ["code"] = Fhir.SmokingStatus }) },
            ["subject"] = new JsonObject { ["reference"] = "Patient/a" },
            ["valueCodeableConcept"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Snomed, ["code"] = "8517006" }) },
        };
        JsonObject Condition(string code) => new()
        {
            ["resourceType"] = "Condition",
            ["code"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = Fhir.Snomed, ["code"] = code }) },
            ["subject"] = new JsonObject { ["reference"] = "Patient/a" },
        };
        var r = Read(Bundle(Obs("4548-4", 6.1, "%"), Patient(), panel, smoking, Condition("38341003"), Condition("22298006")).ToJsonString());
        Assert.Empty(r.Errors);
        var p = Assert.Single(r.Cohort.Patients);
        Assert.Equal(2, p.Visits.Count);                 // two dates
        Assert.Equal(6.1, p.Visits[0][4]);               // hba1c on the first date
        Assert.Equal(141, p.Visits[1][1]);
        Assert.Equal(88, p.Visits[1][2]);
        Assert.Equal(new double[] { 63, 0, 1, 1, 0 }, p.Static); // age at 2024-03-01, female, former smoker, hypertension, no diabetes
        Assert.Equal(1, p.Label);
    }

    public static TheoryData<string, int, string, string> BadBundles() => new()
    {
        { Bundle(Patient(), Obs("39156-5", 27, "lb/in2")).ToJsonString(), 2, "resource.valueQuantity.code", "no conversion" },
        { Bundle(Patient(), Obs("39156-5", 27, "kg/m2", patient: "zz")).ToJsonString(), 2, "resource.subject.reference", "not a patient" },
        { Bundle(Patient(), Obs("39156-5", 27, "kg/m2", date: "yesterday")).ToJsonString(), 2, "resource.effectiveDateTime", "not a FHIR date" },
        { Bundle(Patient(), Obs("39156-5", 27, "kg/m2"), Obs("39156-5", 28, "kg/m2")).ToJsonString(), 3, "resource.valueQuantity.value", "second bmi" },
        { Bundle(Patient(), Obs("8867-4", -5, "/min")).ToJsonString(), 2, "resource.valueQuantity.value", "plausible range" },
        { Bundle(Patient(), Obs("8867-4", 70, "/min", status: "preliminary")).ToJsonString(), 2, "resource.status", "not final" },
        { Bundle(Patient(gender: "other"), Obs("8867-4", 70, "/min")).ToJsonString(), 1, "resource.gender", "not supported" },
        { Bundle(Patient(birth: "1960"), Obs("8867-4", 70, "/min")).ToJsonString(), 1, "resource.birthDate", "full date" },
        { Bundle(Patient()).ToJsonString(), 1, "resource", "no vital-sign observations" },
        { Bundle(Patient(), Patient(), Obs("8867-4", 70, "/min")).ToJsonString(), 2, "resource.id", "twice" },
        { "{\"resourceType\":\"Patient\"}", 0, "resourceType", "expected a FHIR Bundle" },
        { "{\"resourceType\":\"Bundle\",\n \"entry\": [ {\"resource\": ", 2, "$", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(BadBundles))]
    public void Each_kind_of_bad_input_is_reported_with_entry_and_json_path(string json, int row, string column, string message)
    {
        var r = Read(json);
        var e = Assert.Single(r.Errors, x => x.Column == column);
        Assert.Equal(("bundle.json", row), (e.File, e.Row));
        Assert.Contains(message, e.Message);
        Assert.Empty(r.Cohort.Patients);
    }

    [Fact]
    public void A_bad_observation_rejects_only_its_patient()
    {
        var r = Read(Bundle(Patient("a"), Patient("b"), Obs("8867-4", 70, "/min", patient: "a"), Obs("8867-4", 70, "beats", patient: "b")).ToJsonString());
        Assert.Single(r.Errors);
        Assert.Single(r.Cohort.Patients);
        Assert.Single(r.RejectedPatients);
    }
}
